"""unprocessed stripe events index

Revision ID: b082798cc76e
Revises: e764edcd6eb9
Create Date: 2026-12-03 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b082798cc76e'
down_revision = 'e764edcd6eb9'
branch_labels = None
depends_on = None

UNPROCESSED = sa.text("processed_at IS NULL AND parked_at IS NULL")


def upgrade():
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.create_index(
            'ix_stripe_events_unprocessed',
            ['id'],
            unique=False,
            postgresql_where=UNPROCESSED,
            sqlite_where=UNPROCESSED,
        )


def downgrade():
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.drop_index('ix_stripe_events_unprocessed')
