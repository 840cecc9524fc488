"""sessions and tokens: revocable sessions, rotating remember-me, named API tokens

Revision ID: 0005
Revises: 0004

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('session_version', sa.Integer(), server_default='0', nullable=False)
        )

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('name', sa.String(length=80), server_default='', nullable=False)
        )
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))

    op.create_table('remember_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('previous_sha256', sa.String(length=64), nullable=True),
    sa.Column('rotated_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_sha256')
    )
    with op.batch_alter_table('remember_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_remember_tokens_user_id'), ['user_id'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_remember_tokens_previous_sha256'), ['previous_sha256'], unique=False
        )


def downgrade():
    with op.batch_alter_table('remember_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_remember_tokens_previous_sha256'))
        batch_op.drop_index(batch_op.f('ix_remember_tokens_user_id'))

    op.drop_table('remember_tokens')

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
        batch_op.drop_column('name')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
