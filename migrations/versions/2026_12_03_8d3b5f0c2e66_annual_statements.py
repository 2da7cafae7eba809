"""annual giving statements: one row per supporter and fiscal year emailed

Revision ID: 8d3b5f0c2e66
Revises: 7c2a4e9b1d55
Create Date: 2026-12-03 07:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = '8d3b5f0c2e66'
down_revision = '7c2a4e9b1d55'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('annual_statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supporter_id', sa.Integer(), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('email_message_id', sa.Integer(), nullable=True),
    sa.Column('queued_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['email_message_id'], ['email_messages.id'], name=op.f('fk_annual_statements_email_message_id_email_messages')),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_annual_statements_supporter_id_supporters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annual_statements')),
    sa.UniqueConstraint('supporter_id', 'fiscal_year', name=op.f('uq_annual_statements_supporter_id'))
    )
    with op.batch_alter_table('annual_statements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annual_statements_supporter_id'), ['supporter_id'], unique=False)


def downgrade():
    with op.batch_alter_table('annual_statements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annual_statements_supporter_id'))
    op.drop_table('annual_statements')
