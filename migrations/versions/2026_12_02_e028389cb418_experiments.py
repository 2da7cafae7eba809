"""experiments: A/B tests of the ask and their variants (counts stay in embed_counts and the ledger)

Revision ID: e028389cb418
Revises: b7e2c4a91d10
Create Date: 2026-12-02 14:19:56.041057

"""
from alembic import op
import sqlalchemy as sa

import donations.db


# revision identifiers, used by Alembic.
revision = 'e028389cb418'
down_revision = 'b7e2c4a91d10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('experiments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=30), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('status', sa.Enum('draft', 'running', 'ended', name='experimentstatus', native_enum=False, length=20), nullable=False),
    sa.Column('seed', sa.String(length=32), nullable=False),
    sa.Column('baseline_bps', sa.Integer(), nullable=False),
    sa.Column('mde_bps', sa.Integer(), nullable=False),
    sa.Column('alpha_bps', sa.Integer(), nullable=False),
    sa.Column('power_bps', sa.Integer(), nullable=False),
    sa.Column('guardrail_margin_bps', sa.Integer(), nullable=False),
    sa.Column('guardrail_minimum', sa.Integer(), nullable=False),
    sa.Column('created_at', donations.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('alpha_bps > 0 AND alpha_bps < 10000', name=op.f('ck_experiments_alpha_range')),
    sa.CheckConstraint('baseline_bps > 0 AND baseline_bps < 10000', name=op.f('ck_experiments_baseline_range')),
    sa.CheckConstraint('guardrail_margin_bps > 0 AND guardrail_margin_bps < 10000', name=op.f('ck_experiments_margin_range')),
    sa.CheckConstraint('guardrail_minimum > 0', name=op.f('ck_experiments_guardrail_minimum_positive')),
    sa.CheckConstraint('mde_bps > 0', name=op.f('ck_experiments_mde_positive')),
    sa.CheckConstraint('power_bps > 0 AND power_bps < 10000', name=op.f('ck_experiments_power_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiments')),
    sa.UniqueConstraint('slug', name=op.f('uq_experiments_slug'))
    )
    op.create_table('experiment_variants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=19), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('share', sa.Integer(), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('stopped_at', donations.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('stopped_reason', sa.String(length=200), nullable=True),
    sa.CheckConstraint('share > 0 AND share < 100', name=op.f('ck_experiment_variants_share_range')),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_experiment_variants_experiment_id_experiments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiment_variants')),
    sa.UniqueConstraint('experiment_id', 'key', name=op.f('uq_experiment_variants_key')),
    sa.UniqueConstraint('experiment_id', 'position', name=op.f('uq_experiment_variants_position'))
    )


def downgrade():
    op.drop_table('experiment_variants')
    op.drop_table('experiments')
