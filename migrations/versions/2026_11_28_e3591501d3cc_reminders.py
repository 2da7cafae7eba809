"""reminders; outbox retries, extra headers, attempts and the suppression list

Reminders are rows with a due time; donations and plans record the reminder
they came through. The outbox gains per-message headers (List-Unsubscribe),
retry scheduling (next_attempt_at, claimed_at), a log of every attempt and a
suppression list keyed by a hash of the address.

Revision ID: e3591501d3cc
Revises: 9da1bc58c5c0
Create Date: 2026-11-28 01:38:06.426426

"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = 'e3591501d3cc'
down_revision = '9da1bc58c5c0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('email_suppressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address_hash', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Enum('unsubscribed', 'bounced', 'erased', name='suppressionreason', native_enum=False, length=20), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_suppressions')),
    sa.UniqueConstraint('address_hash', name=op.f('uq_email_suppressions_address_hash'))
    )
    op.create_table('email_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('started_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.Enum('sent', 'retry', 'gave_up', 'refused', 'suppressed', name='attemptoutcome', native_enum=False, length=20), nullable=False),
    sa.Column('smtp_code', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['email_messages.id'], name=op.f('fk_email_attempts_message_id_email_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_attempts'))
    )
    with op.batch_alter_table('email_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_attempts_message_id'), ['message_id'], unique=False)

    op.create_table('reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('email_key', sa.String(length=320), nullable=True),
    sa.Column('address_hash', sa.String(length=64), nullable=True),
    sa.Column('supporter_id', sa.Integer(), nullable=True),
    sa.Column('locale', sa.String(length=10), nullable=False),
    sa.Column('frequency', sa.Enum('once', 'monthly', 'annual', name='frequency', native_enum=False, length=10), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('amount', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=500), nullable=True),
    sa.Column('months', sa.Integer(), nullable=False),
    sa.Column('due_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('status', sa.Enum('pending', 'sent', 'skipped', 'canceled', name='reminderstatus', native_enum=False, length=20), nullable=False),
    sa.Column('skip_reason', sa.Enum('gave_since', 'unsubscribed', 'bounced', 'erased', name='skipreason', native_enum=False, length=20), nullable=True),
    sa.Column('email_message_id', sa.Integer(), nullable=True),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount IS NULL OR amount > 0', name=op.f('ck_reminders_amount_positive')),
    sa.ForeignKeyConstraint(['email_message_id'], ['email_messages.id'], name=op.f('fk_reminders_email_message_id_email_messages')),
    sa.ForeignKeyConstraint(['supporter_id'], ['supporters.id'], name=op.f('fk_reminders_supporter_id_supporters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminders'))
    )
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminders_address_hash'), ['address_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_reminders_email_message_id'), ['email_message_id'], unique=False)
        batch_op.create_index('ix_reminders_status_due_at', ['status', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_reminders_supporter_id'), ['supporter_id'], unique=False)
        batch_op.create_index('uq_reminders_pending_period', ['email_key', 'period'], unique=True, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))

    with op.batch_alter_table('donations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reminder_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_donations_reminder_id'), ['reminder_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_donations_reminder_id_reminders'), 'reminders', ['reminder_id'], ['id'])

    with op.batch_alter_table('email_messages', schema=None) as batch_op:
        # Existing rows: no extra headers, not suppressible (receipts).
        batch_op.add_column(sa.Column('headers', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('suppressible', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('next_attempt_at', donations.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', donations.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_email_messages_next_attempt_at'), ['next_attempt_at'], unique=False)

    with op.batch_alter_table('recurring_plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reminder_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_recurring_plans_reminder_id'), ['reminder_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_recurring_plans_reminder_id_reminders'), 'reminders', ['reminder_id'], ['id'])



def downgrade():
    with op.batch_alter_table('recurring_plans', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_recurring_plans_reminder_id_reminders'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_recurring_plans_reminder_id'))
        batch_op.drop_column('reminder_id')

    with op.batch_alter_table('email_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_messages_next_attempt_at'))
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('suppressible')
        batch_op.drop_column('headers')

    with op.batch_alter_table('donations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_donations_reminder_id_reminders'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_donations_reminder_id'))
        batch_op.drop_column('reminder_id')

    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_index('uq_reminders_pending_period', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
        batch_op.drop_index(batch_op.f('ix_reminders_supporter_id'))
        batch_op.drop_index('ix_reminders_status_due_at')
        batch_op.drop_index(batch_op.f('ix_reminders_email_message_id'))
        batch_op.drop_index(batch_op.f('ix_reminders_address_hash'))

    op.drop_table('reminders')
    with op.batch_alter_table('email_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_attempts_message_id'))

    op.drop_table('email_attempts')
    op.drop_table('email_suppressions')
