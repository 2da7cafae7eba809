"""card expiry on donations, for the notice before a plan charges an expired card

Revision ID: 7c2a4e9b1d55
Revises: 5b1e8d2c7a90
Create Date: 2026-12-03 07:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7c2a4e9b1d55'
down_revision = '5b1e8d2c7a90'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('donations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_exp_month', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('card_exp_year', sa.SmallInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('donations', schema=None) as batch_op:
        batch_op.drop_column('card_exp_year')
        batch_op.drop_column('card_exp_month')
