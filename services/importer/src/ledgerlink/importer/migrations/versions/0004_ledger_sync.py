"""importer store: ledger sync over the vendor APIs (sync states, ledger periods, the
checkpoint of a full read on its job, vouchers found by the vendor's id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 05:40:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('ledger_periods',
    sa.Column('company_id', sa.Uuid(), nullable=False),
    sa.Column('start', sa.Date(), nullable=False),
    sa.Column('end', sa.Date(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('company_id', 'start')
    )
    op.create_table('sync_states',
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('business_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=False),
    sa.Column('interval_minutes', sa.Integer(), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paused_reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('last_import_id', sa.Uuid(), nullable=True),
    sa.Column('last_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('last_mode', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_counts', sa.JSON(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('warnings', sa.JSON(), nullable=True),
    sa.Column('default_transaction_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('connection_id')
    )
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sync_mode', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('sync_cursor', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('staging_company_id', sa.Uuid(), nullable=True))
    with op.batch_alter_table('vouchers', schema=None) as batch_op:
        batch_op.create_index('ix_vouchers_fiscal_year_id_source_id', ['fiscal_year_id', 'source_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('vouchers', schema=None) as batch_op:
        batch_op.drop_index('ix_vouchers_fiscal_year_id_source_id')
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_column('staging_company_id')
        batch_op.drop_column('sync_cursor')
        batch_op.drop_column('sync_mode')
    op.drop_table('sync_states')
    op.drop_table('ledger_periods')
