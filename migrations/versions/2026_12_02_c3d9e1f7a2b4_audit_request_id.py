"""audit entries: the request id of the request (or task) that wrote them

Revision ID: c3d9e1f7a2b4
Revises: a515920bad23
Create Date: 2026-12-02 14:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3d9e1f7a2b4'
down_revision = 'a515920bad23'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN on both databases: the table is append-only with
    # triggers, which a batch copy-and-move on SQLite would drop.
    op.add_column('audit_entries', sa.Column('request_id', sa.String(length=64), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+) for the same reason: keep the triggers.
    op.drop_column('audit_entries', 'request_id')
