"""report exports prepared in the background

Revision ID: 5e1f0a9c7d21
Revises: c3d9e1f27a44
Create Date: 2026-12-03 01:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = '5e1f0a9c7d21'
down_revision = 'c3d9e1f27a44'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('report_exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('report', sa.String(length=40), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'ready', 'failed', 'expired', name='exportstatus', native_enum=False, create_constraint=False, length=20), nullable=False),
    sa.Column('rows_expected', sa.Integer(), nullable=True),
    sa.Column('rows_written', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('file_name', sa.String(length=200), nullable=False),
    sa.Column('error', sa.String(length=200), nullable=True),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_users.id'], name=op.f('fk_report_exports_staff_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_exports'))
    )
    with op.batch_alter_table('report_exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_exports_staff_id'), ['staff_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_exports_status'), ['status'], unique=False)


def downgrade():
    with op.batch_alter_table('report_exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_exports_status'))
        batch_op.drop_index(batch_op.f('ix_report_exports_staff_id'))
    op.drop_table('report_exports')
