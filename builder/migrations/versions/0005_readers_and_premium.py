"""readers, entitlements, subscription codes, premium overlays; publication members

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 18:50:57.966722
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('api_nonces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_id', 'nonce', name='uq_api_nonce'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('api_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_nonces_at'), ['at'], unique=False)

    op.create_table('reader_login_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('reader_login_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reader_login_attempts_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_reader_login_attempts_email'), ['email'], unique=False)

    op.create_table('readers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('external_id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_readers_email'), ['email'], unique=True)

    op.create_table('code_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('publication_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('max_redemptions', sa.Integer(), nullable=False),
    sa.Column('redeem_until', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('code_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_code_batches_publication_id'), ['publication_id'], unique=False)

    op.create_table('entitlements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('publication_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('source_ref', sa.String(length=100), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('entitlements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entitlements_publication_id'), ['publication_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_entitlements_reader_id'), ['reader_id'], unique=False)

    op.create_table('password_resets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_resets_reader_id'), ['reader_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_password_resets_token_hash'), ['token_hash'], unique=True)

    op.create_table('publication_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('publication_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['publication_id'], ['publications.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('publication_id', 'user_id', name='uq_publication_member'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('publication_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_publication_members_publication_id'), ['publication_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_publication_members_user_id'), ['user_id'], unique=False)

    op.create_table('reader_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('reader_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reader_sessions_reader_id'), ['reader_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reader_sessions_token_hash'), ['token_hash'], unique=True)

    op.create_table('subscription_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('redemptions', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['code_batches.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('batch_id', 'serial', name='uq_code_serial'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('subscription_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_codes_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subscription_codes_code_hash'), ['code_hash'], unique=True)

    op.create_table('code_redemptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['code_id'], ['subscription_codes.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reader_id'], ['readers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code_id', 'reader_id', name='uq_code_reader'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('code_redemptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_code_redemptions_code_id'), ['code_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_code_redemptions_reader_id'), ['reader_id'], unique=False)

    with op.batch_alter_table('publications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('premium_free_after_days', sa.Integer(), nullable=True))

    with op.batch_alter_table('overlays', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access', sa.String(length=10), server_default='free', nullable=False))
        batch_op.add_column(sa.Column('teaser', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('teaser_seconds', sa.Integer(), server_default='5', nullable=False))

    


def downgrade() -> None:
    
    with op.batch_alter_table('publications', schema=None) as batch_op:
        batch_op.drop_column('premium_free_after_days')

    with op.batch_alter_table('overlays', schema=None) as batch_op:
        batch_op.drop_column('teaser_seconds')
        batch_op.drop_column('teaser')
        batch_op.drop_column('access')

    with op.batch_alter_table('code_redemptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_code_redemptions_reader_id'))
        batch_op.drop_index(batch_op.f('ix_code_redemptions_code_id'))

    op.drop_table('code_redemptions')
    with op.batch_alter_table('subscription_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscription_codes_code_hash'))
        batch_op.drop_index(batch_op.f('ix_subscription_codes_batch_id'))

    op.drop_table('subscription_codes')
    with op.batch_alter_table('reader_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reader_sessions_token_hash'))
        batch_op.drop_index(batch_op.f('ix_reader_sessions_reader_id'))

    op.drop_table('reader_sessions')
    with op.batch_alter_table('publication_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_publication_members_user_id'))
        batch_op.drop_index(batch_op.f('ix_publication_members_publication_id'))

    op.drop_table('publication_members')
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_resets_token_hash'))
        batch_op.drop_index(batch_op.f('ix_password_resets_reader_id'))

    op.drop_table('password_resets')
    with op.batch_alter_table('entitlements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entitlements_reader_id'))
        batch_op.drop_index(batch_op.f('ix_entitlements_publication_id'))

    op.drop_table('entitlements')
    with op.batch_alter_table('code_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_code_batches_publication_id'))

    op.drop_table('code_batches')
    with op.batch_alter_table('readers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_readers_email'))

    op.drop_table('readers')
    with op.batch_alter_table('reader_login_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reader_login_attempts_email'))
        batch_op.drop_index(batch_op.f('ix_reader_login_attempts_at'))

    op.drop_table('reader_login_attempts')
    with op.batch_alter_table('api_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_nonces_at'))

    op.drop_table('api_nonces')
    
