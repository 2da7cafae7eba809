"""one refund model: staff requests move from refund_attempts into refunds

Revision ID: b7e2c4a91d10
Revises: 220b12d44fa8
Create Date: 2026-12-01 23:59:00

Every refund_attempts row becomes (or is merged into) a refunds row: the
staff member, their reason, the attempt key and any error are kept; an
attempt Stripe answered is merged into the refunds row with its Stripe id,
one Stripe never answered is kept with no Stripe id. donations.refunded_amount
is then derived again from the refunds.
"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = 'b7e2c4a91d10'
down_revision = '220b12d44fa8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('staff_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('staff_reason', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('error', sa.Text(), nullable=True))
        batch_op.alter_column('stripe_refund_id', existing_type=sa.String(length=255), nullable=True)
        batch_op.create_unique_constraint(batch_op.f('uq_refunds_attempt_key'), ['attempt_key'])
        batch_op.create_foreign_key(
            batch_op.f('fk_refunds_staff_id_staff_users'), 'staff_users', ['staff_id'], ['id']
        )

    # Attempts Stripe answered: merge into the refund row mirrored from Stripe.
    op.execute(
        """
        UPDATE refunds SET
            attempt_key = (SELECT a.attempt_key FROM refund_attempts a
                           WHERE a.stripe_refund_id = refunds.stripe_refund_id),
            staff_id = (SELECT a.staff_id FROM refund_attempts a
                        WHERE a.stripe_refund_id = refunds.stripe_refund_id),
            staff_reason = (SELECT a.reason FROM refund_attempts a
                            WHERE a.stripe_refund_id = refunds.stripe_refund_id),
            error = (SELECT a.error FROM refund_attempts a
                     WHERE a.stripe_refund_id = refunds.stripe_refund_id)
        WHERE stripe_refund_id IN (SELECT stripe_refund_id FROM refund_attempts
                                   WHERE stripe_refund_id IS NOT NULL)
        """
    )
    # The others (no webhook yet, or refused by Stripe): rows of their own.
    op.execute(
        """
        INSERT INTO refunds (stripe_refund_id, donation_id, amount, currency, status,
                             attempt_key, staff_id, staff_reason, error,
                             stripe_created_at, created_at, updated_at)
        SELECT a.stripe_refund_id, a.donation_id, a.amount, a.currency, a.status,
               a.attempt_key, a.staff_id, a.reason, a.error,
               COALESCE(a.completed_at, a.created_at), a.created_at,
               COALESCE(a.completed_at, a.created_at)
        FROM refund_attempts a
        WHERE a.stripe_refund_id IS NULL
           OR a.stripe_refund_id NOT IN (SELECT r.stripe_refund_id FROM refunds r
                                         WHERE r.stripe_refund_id IS NOT NULL)
        """
    )
    op.execute(
        """
        UPDATE donations SET refunded_amount = COALESCE(
            (SELECT SUM(r.amount) FROM refunds r
             WHERE r.donation_id = donations.id
               AND r.status IN ('pending', 'requires_action', 'succeeded')), 0)
        """
    )

    with op.batch_alter_table('refund_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refund_attempts_donation_id'))
    op.drop_table('refund_attempts')


def downgrade():
    op.create_table('refund_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('attempt_key', sa.String(length=64), nullable=False),
    sa.Column('donation_id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('status', sa.Enum('requested', 'pending', 'succeeded', 'failed', name='refundstatus', native_enum=False, length=20), nullable=False),
    sa.Column('stripe_refund_id', sa.String(length=255), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_refund_attempts_amount_positive')),
    sa.ForeignKeyConstraint(['donation_id'], ['donations.id'], name=op.f('fk_refund_attempts_donation_id_donations')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_users.id'], name=op.f('fk_refund_attempts_staff_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refund_attempts')),
    sa.UniqueConstraint('attempt_key', name=op.f('uq_refund_attempts_attempt_key')),
    sa.UniqueConstraint('stripe_refund_id', name=op.f('uq_refund_attempts_stripe_refund_id'))
    )
    with op.batch_alter_table('refund_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_attempts_donation_id'), ['donation_id'], unique=False)
    op.execute(
        """
        INSERT INTO refund_attempts (attempt_key, donation_id, staff_id, amount, currency, reason,
                                     status, stripe_refund_id, error, created_at, completed_at)
        SELECT attempt_key, donation_id, staff_id, amount, currency, COALESCE(staff_reason, ''),
               CASE WHEN status IN ('requires_action') THEN 'pending'
                    WHEN status = 'canceled' THEN 'failed' ELSE status END,
               stripe_refund_id, error, created_at, updated_at
        FROM refunds WHERE attempt_key IS NOT NULL AND staff_id IS NOT NULL
        """
    )
    op.execute("DELETE FROM refunds WHERE stripe_refund_id IS NULL")
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_refunds_staff_id_staff_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_refunds_attempt_key'), type_='unique')
        batch_op.alter_column('stripe_refund_id', existing_type=sa.String(length=255), nullable=False)
        batch_op.drop_column('error')
        batch_op.drop_column('staff_reason')
        batch_op.drop_column('staff_id')
        batch_op.drop_column('attempt_key')
