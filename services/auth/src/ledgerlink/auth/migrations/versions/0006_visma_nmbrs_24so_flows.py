"""visma.net, nmbrs and 24sevenoffice connection pages

Revision ID: 0006_visma_nmbrs_24so_flows
Revises: 0005_activation_pages (the coordinator re-chains after 0005)
Create Date: 2026-12-07 05:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0006_visma_nmbrs_24so_flows'
down_revision: Union[str, None] = '0005_activation_pages'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('connect_flows',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('state_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=True),
    sa.Column('sealed', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_connect_flows_state_hash'), 'connect_flows', ['state_hash'], unique=False)
    op.create_index(op.f('ix_connect_flows_user_id'), 'connect_flows', ['user_id'], unique=False)
    op.create_table('organisation_credentials',
    sa.Column('organisation_id', sa.Uuid(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('ciphertext', sa.Text(), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], ),
    sa.PrimaryKeyConstraint('organisation_id', 'provider')
    )
    op.create_table('login_throttle',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('connection_settings',
    sa.Column('connection_id', sa.Uuid(), nullable=False),
    sa.Column('organisation_id', sa.Uuid(), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('setup_completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], ),
    sa.PrimaryKeyConstraint('connection_id')
    )
    op.create_index(op.f('ix_connection_settings_organisation_id'), 'connection_settings', ['organisation_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_connection_settings_organisation_id'), table_name='connection_settings')
    op.drop_table('connection_settings')
    op.drop_table('login_throttle')
    op.drop_table('organisation_credentials')
    op.drop_index(op.f('ix_connect_flows_user_id'), table_name='connect_flows')
    op.drop_index(op.f('ix_connect_flows_state_hash'), table_name='connect_flows')
    op.drop_table('connect_flows')
