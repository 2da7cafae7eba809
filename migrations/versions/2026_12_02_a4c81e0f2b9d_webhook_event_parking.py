"""webhook events: retry time and parking of events that keep failing

Revision ID: a4c81e0f2b9d
Revises: e3591501d3cc
Create Date: 2026-12-02 00:45:00

"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = 'a4c81e0f2b9d'
down_revision = 'e3591501d3cc'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', donations.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('parked_at', donations.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_stripe_events_parked_at'), ['parked_at'], unique=False)


def downgrade():
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_events_parked_at'))
        batch_op.drop_column('parked_at')
        batch_op.drop_column('next_attempt_at')
