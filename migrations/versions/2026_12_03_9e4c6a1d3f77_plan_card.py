"""the card a plan's next renewal charges, for the notice before it expires

Revision ID: 9e4c6a1d3f77
Revises: 8d3b5f0c2e66
Create Date: 2026-12-03 07:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9e4c6a1d3f77'
down_revision = '8d3b5f0c2e66'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('recurring_plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_brand', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('card_last4', sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column('card_exp_month', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('card_exp_year', sa.SmallInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('recurring_plans', schema=None) as batch_op:
        batch_op.drop_column('card_exp_year')
        batch_op.drop_column('card_exp_month')
        batch_op.drop_column('card_last4')
        batch_op.drop_column('card_brand')
