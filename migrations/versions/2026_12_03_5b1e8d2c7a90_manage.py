"""manage my support: sign-in links, sessions, email changes, erasure requests

Revision ID: 5b1e8d2c7a90
Revises: 5e1f0a9c7d21
Create Date: 2026-12-03 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = '5b1e8d2c7a90'
down_revision = '5e1f0a9c7d21'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('manage_sign_in_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.Integer(), nullable=False),
    sa.Column('address_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_manage_sign_in_links_supporter_id_supporters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_manage_sign_in_links'))
    )
    with op.batch_alter_table('manage_sign_in_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_manage_sign_in_links_supporter_id'), ['supporter_id'], unique=False)

    op.create_table('manage_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('supporter_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=60), nullable=False),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=30), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_manage_sessions_supporter_id_supporters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_manage_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_manage_sessions_token_hash'))
    )
    with op.batch_alter_table('manage_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_manage_sessions_supporter_id'), ['supporter_id'], unique=False)

    op.create_table('manage_email_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.Integer(), nullable=False),
    sa.Column('new_email', sa.String(length=320), nullable=False),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('canceled_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_manage_email_changes_supporter_id_supporters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_manage_email_changes'))
    )
    with op.batch_alter_table('manage_email_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_manage_email_changes_supporter_id'), ['supporter_id'], unique=False)

    op.create_table('manage_erasure_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('requested_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_manage_erasure_requests_supporter_id_supporters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_manage_erasure_requests'))
    )
    with op.batch_alter_table('manage_erasure_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_manage_erasure_requests_supporter_id'), ['supporter_id'], unique=False)


def downgrade():
    for table in ('manage_erasure_requests', 'manage_email_changes', 'manage_sessions', 'manage_sign_in_links'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_supporter_id'))
        op.drop_table(table)
