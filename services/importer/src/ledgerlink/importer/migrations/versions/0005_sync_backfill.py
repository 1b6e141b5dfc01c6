"""importer store: a backfill's range of voucher dates on its import job

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 09:40:00.000000
"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = "0005"
down_revision: Union[str, None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sync_from", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("sync_to", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_column("sync_to")
        batch_op.drop_column("sync_from")
