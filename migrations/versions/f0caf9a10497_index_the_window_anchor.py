"""index the window anchor

Revision ID: f0caf9a10497
Revises: 2918e23f9674
Create Date: 2026-11-25 18:36:14.066972

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "f0caf9a10497"
down_revision = "2918e23f9674"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversations_last_inbound_at"), ["last_inbound_at"], unique=False)


def downgrade():
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversations_last_inbound_at"))
