"""kinds: owner optional, origin, subject, unit; message codes; the outbox

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

LIVE = "status IN ('queued', 'running')"
# Steps stored as English text before codes (the rest start over as no step).
STEPS = {"Waiting for a worker": "waiting", "Starting": "starting", "Drawing labels": "drawing_labels",
         "Writing the file": "writing_file", "Saving": "saving", "Ready": "ready",
         "Cancelled": "cancelled", "Failed": "failed", "Expired": "expired"}


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=12), nullable=False, server_default='user'))
        batch_op.add_column(sa.Column('subject', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('unit', sa.String(length=12), nullable=False, server_default='label'))
        batch_op.add_column(sa.Column('step_code', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('step_params', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('error_code', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('error_params', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('claims', sa.Integer(), nullable=False, server_default='0'))
        batch_op.alter_column('owner_id', existing_type=sa.Integer(), nullable=True)
    jobs = sa.table('jobs', sa.column('id', sa.String), sa.column('progress_step', sa.String),
                    sa.column('step_code', sa.String), sa.column('error', sa.Text),
                    sa.column('error_code', sa.String), sa.column('error_params', sa.JSON))
    for text, code in STEPS.items():
        op.execute(jobs.update().where(jobs.c.progress_step == text).values(step_code=code))
    bind = op.get_bind()
    for job_id, error in bind.execute(sa.select(jobs.c.id, jobs.c.error).where(jobs.c.error.isnot(None))).all():
        bind.execute(jobs.update().where(jobs.c.id == job_id).values(
            error_code='unexpected', error_params={'reason': error}))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_jobs_live_input')
        batch_op.drop_column('progress_step')
        batch_op.drop_column('error')
        batch_op.create_index('uq_jobs_live_input', ['owner_id', 'input_hash'], unique=True,
                              sqlite_where=sa.text(f"{LIVE} AND subject IS NULL"),
                              postgresql_where=sa.text(f"{LIVE} AND subject IS NULL"))
        batch_op.create_index('uq_jobs_live_subject', ['kind', 'subject', 'input_hash'], unique=True,
                              sqlite_where=sa.text(f"{LIVE} AND subject IS NOT NULL"),
                              postgresql_where=sa.text(f"{LIVE} AND subject IS NOT NULL"))

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('job_id', sa.String(length=24), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_at', sa.DateTime(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_status_next', ['status', 'next_at'], unique=False)


def downgrade():
    op.drop_table('outbox')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_jobs_live_subject')
        batch_op.drop_index('uq_jobs_live_input')
        batch_op.add_column(sa.Column('error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('progress_step', sa.String(length=120), nullable=False, server_default=''))
        for name in ('claims', 'error_params', 'error_code', 'step_params', 'step_code', 'unit', 'subject', 'origin'):
            batch_op.drop_column(name)
        batch_op.create_index('uq_jobs_live_input', ['owner_id', 'input_hash'], unique=True,
                              sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
