"""admin: schedule runs, audit log, finished-at index

Revision ID: 0004
Revises: 0003

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('scope', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('schedule_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('schedule', sa.String(length=60), nullable=False),
    sa.Column('period', sa.String(length=12), nullable=False),
    sa.Column('job_id', sa.String(length=24), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('schedule', 'period', name='uq_schedule_runs_period')
    )
    op.create_index('ix_jobs_finished_at', 'jobs',
                    ['finished_at', 'status', 'kind', 'started_at', 'parent_id'], unique=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_id', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('items', sa.JSON(), nullable=True))
        batch_op.create_index('ix_jobs_batch_id', ['batch_id'], unique=False)
        batch_op.create_foreign_key('fk_jobs_batch_id', 'jobs', ['batch_id'], ['id'], ondelete='SET NULL')

    


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint('fk_jobs_batch_id', type_='foreignkey')
        batch_op.drop_index('ix_jobs_batch_id')
        batch_op.drop_column('items')
        batch_op.drop_column('batch_id')
    op.drop_index('ix_jobs_finished_at', table_name='jobs')

    op.drop_table('schedule_runs')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
    
