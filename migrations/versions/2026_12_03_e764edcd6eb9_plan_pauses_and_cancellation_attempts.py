"""plan pauses and cancellation attempts

Revision ID: e764edcd6eb9
Revises: 9e4c6a1d3f77
Create Date: 2026-12-03 07:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = 'e764edcd6eb9'
down_revision = '9e4c6a1d3f77'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('cancellation_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('timing', sa.Enum('period_end', 'now', name='cancellationtiming', native_enum=False, create_constraint=False, length=20), nullable=False),
    sa.Column('offers_shown', sa.String(length=100), nullable=False),
    sa.Column('offer_taken', sa.String(length=20), nullable=True),
    sa.Column('status', sa.Enum('offered', 'saved', 'cancelled', name='attemptstatus', native_enum=False, create_constraint=False, length=20), nullable=False),
    sa.Column('source', sa.String(length=60), nullable=False),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['plan_id'], ['recurring_plans.id'], name=op.f('fk_cancellation_attempts_plan_id_recurring_plans')),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_cancellation_attempts_supporter_id_supporters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cancellation_attempts'))
    )
    with op.batch_alter_table('cancellation_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cancellation_attempts_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cancellation_attempts_supporter_id'), ['supporter_id'], unique=False)

    with op.batch_alter_table('recurring_plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancel_at_period_end', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('cancel_at', donations.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('pause_behavior', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('paused_until', donations.db.UTCDateTime(timezone=True), nullable=True))



def downgrade():
    with op.batch_alter_table('recurring_plans', schema=None) as batch_op:
        batch_op.drop_column('paused_until')
        batch_op.drop_column('pause_behavior')
        batch_op.drop_column('cancel_at')
        batch_op.drop_column('cancel_at_period_end')

    with op.batch_alter_table('cancellation_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cancellation_attempts_supporter_id'))
        batch_op.drop_index(batch_op.f('ix_cancellation_attempts_plan_id'))

    op.drop_table('cancellation_attempts')
