"""staff: each member's language for numbers, money and dates in the back office

Revision ID: c3d9e1f27a44
Revises: d4e8f2a6c1b3
Create Date: 2026-12-02 15:00:00
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3d9e1f27a44'
down_revision = 'd4e8f2a6c1b3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=5), server_default='en', nullable=False))


def downgrade():
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.drop_column('locale')
