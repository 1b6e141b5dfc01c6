"""payroll: release per mapping, the schedule's marks per year, shared rate windows

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 09:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('payroll_mappings', sa.Column('release', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.add_column('payroll_mappings', sa.Column('start_period', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=True))
    op.add_column('payroll_postings', sa.Column('release', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.add_column('payroll_postings', sa.Column('release_attempts', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('payroll_postings', sa.Column('released_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('payroll_run_marks',
    sa.Column('mapping_id', sa.Uuid(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('nmbrs_company_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('high_water', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('runs_seen', sa.Integer(), nullable=False),
    sa.Column('settled', sa.Boolean(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('mapping_id', 'year')
    )
    op.create_table('vendor_rate_windows',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('limit', sa.Integer(), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=True),
    sa.Column('ends_at', sa.Float(), nullable=True),
    sa.Column('length_seconds', sa.Float(), nullable=False),
    sa.Column('paused_until', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('vendor_rate_windows')
    op.drop_table('payroll_run_marks')
    op.drop_column('payroll_postings', 'released_at')
    op.drop_column('payroll_postings', 'release_attempts')
    op.drop_column('payroll_postings', 'release')
    op.drop_column('payroll_mappings', 'start_period')
    op.drop_column('payroll_mappings', 'release')
