"""login throttles and single-use login challenges instead of account lockout

Revision ID: d4e8f2a6c1b3
Revises: c3d9e7a15b42
Create Date: 2026-12-02 15:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = 'd4e8f2a6c1b3'
down_revision = 'c3d9e7a15b42'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('login_throttles',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=10), nullable=False),
    sa.Column('account_hash', sa.String(length=64), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('blocked_until', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttles'))
    )
    with op.batch_alter_table('login_throttles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_throttles_account_hash'), ['account_hash'], unique=False)

    op.create_table('staff_login_challenges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('user_agent_hash', sa.String(length=64), nullable=False),
    sa.Column('next_path', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_users.id'], name=op.f('fk_staff_login_challenges_staff_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_login_challenges')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_staff_login_challenges_token_hash'))
    )
    with op.batch_alter_table('staff_login_challenges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_login_challenges_staff_id'), ['staff_id'], unique=False)

    # No hard lock any more: failures live in login_throttles.
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_logins')


def downgrade():
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('locked_until', donations.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('staff_login_challenges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_login_challenges_staff_id'))
    op.drop_table('staff_login_challenges')
    with op.batch_alter_table('login_throttles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_throttles_account_hash'))
    op.drop_table('login_throttles')
