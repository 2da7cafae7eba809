"""setting versions: every value the ask's settings had, so one can be restored

Revision ID: c3d9e7a15b42
Revises: c3d9e1f7a2b4
Create Date: 2026-12-02 14:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = 'c3d9e7a15b42'
down_revision = 'c3d9e1f7a2b4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('setting_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('restored_from', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_setting_versions'))
    )
    with op.batch_alter_table('setting_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_setting_versions_key'), ['key'], unique=False)


def downgrade():
    with op.batch_alter_table('setting_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_setting_versions_key'))
    op.drop_table('setting_versions')
