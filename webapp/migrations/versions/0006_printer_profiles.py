"""printer profiles: saved layouts, offsets and copies per user

Revision ID: 0006
Revises: 0005

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('printer_profiles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('layout', sa.String(length=40), nullable=False),
    sa.Column('custom', sa.JSON(), nullable=True),
    sa.Column('start_position', sa.Integer(), nullable=False),
    sa.Column('offset_x', sa.Float(), nullable=False),
    sa.Column('offset_y', sa.Float(), nullable=False),
    sa.Column('copies', sa.Integer(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'name', name='uq_printer_profiles_name')
    )


def downgrade():
    op.drop_table('printer_profiles')
