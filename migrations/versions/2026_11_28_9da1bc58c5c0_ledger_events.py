"""ledger events: refunds, disputes, payouts; donations.payout_id, supporters.erased_at

Revision ID: 9da1bc58c5c0
Revises: 6f5f0acbd3c1
Create Date: 2026-11-28 01:35:29.001990

"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = '9da1bc58c5c0'
down_revision = '6f5f0acbd3c1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stripe_payout_id', sa.String(length=255), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.Enum('pending', 'in_transit', 'paid', 'failed', 'canceled', name='payoutstatus', native_enum=False, length=20), nullable=False),
    sa.Column('automatic', sa.Boolean(), nullable=False),
    sa.Column('arrival_date', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('failure_code', sa.String(length=100), nullable=True),
    sa.Column('failure_message', sa.String(length=500), nullable=True),
    sa.Column('stripe_created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_payouts_amount_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payouts')),
    sa.UniqueConstraint('stripe_payout_id', name=op.f('uq_payouts_stripe_payout_id'))
    )
    op.create_table('disputes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stripe_dispute_id', sa.String(length=255), nullable=False),
    sa.Column('donation_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.Enum('warning_needs_response', 'warning_under_review', 'warning_closed', 'needs_response', 'under_review', 'won', 'lost', 'prevented', name='disputestatus', native_enum=False, length=30), nullable=False),
    sa.Column('reason', sa.String(length=50), nullable=False),
    sa.Column('fee', sa.Integer(), nullable=False),
    sa.Column('net', sa.Integer(), nullable=False),
    sa.Column('stripe_created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_disputes_amount_positive')),
    sa.ForeignKeyConstraint(['donation_id'], ['donations.id'], name=op.f('fk_disputes_donation_id_donations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes')),
    sa.UniqueConstraint('stripe_dispute_id', name=op.f('uq_disputes_stripe_dispute_id'))
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disputes_donation_id'), ['donation_id'], unique=False)

    op.create_table('refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stripe_refund_id', sa.String(length=255), nullable=False),
    sa.Column('donation_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.Enum('pending', 'requires_action', 'succeeded', 'failed', 'canceled', name='refundstatus', native_enum=False, length=20), nullable=False),
    sa.Column('reason', sa.String(length=50), nullable=True),
    sa.Column('failure_reason', sa.String(length=100), nullable=True),
    sa.Column('payout_id', sa.Integer(), nullable=True),
    sa.Column('stripe_created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['donation_id'], ['donations.id'], name=op.f('fk_refunds_donation_id_donations')),
    sa.ForeignKeyConstraint(['payout_id'], ['payouts.id'], name=op.f('fk_refunds_payout_id_payouts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('stripe_refund_id', name=op.f('uq_refunds_stripe_refund_id'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_donation_id'), ['donation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_payout_id'), ['payout_id'], unique=False)

    with op.batch_alter_table('donations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payout_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_donations_payout_id'), ['payout_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_donations_payout_id_payouts'), 'payouts', ['payout_id'], ['id'])

    with op.batch_alter_table('supporters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', donations.db.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('supporters', schema=None) as batch_op:
        batch_op.drop_column('erased_at')

    with op.batch_alter_table('donations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_donations_payout_id_payouts'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_donations_payout_id'))
        batch_op.drop_column('payout_id')

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_payout_id'))
        batch_op.drop_index(batch_op.f('ix_refunds_donation_id'))

    op.drop_table('refunds')
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disputes_donation_id'))

    op.drop_table('disputes')
    op.drop_table('payouts')
