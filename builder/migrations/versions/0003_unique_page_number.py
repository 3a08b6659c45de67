"""one page per number in an edition (concurrent uploads made four pages numbered 70)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 14:40:00

Pages that already share a number (made by that race) keep the lowest id at it; the others move to the numbers
after the edition's highest, in id order, so the constraint can be added without losing a page.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, edition_id, number FROM pages ORDER BY edition_id, number, id")).fetchall()
    seen: dict[int, set[int]] = {}
    highest: dict[int, int] = {}
    for _id, edition_id, number in rows:
        highest[edition_id] = max(highest.get(edition_id, 0), number)
    for page_id, edition_id, number in rows:
        taken = seen.setdefault(edition_id, set())
        if number in taken:
            highest[edition_id] += 1
            bind.execute(sa.text("UPDATE pages SET number = :n WHERE id = :id"),
                         {"n": highest[edition_id], "id": page_id})
            taken.add(highest[edition_id])
        else:
            taken.add(number)
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_page_number', ['edition_id', 'number'])


def downgrade() -> None:
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.drop_constraint('uq_page_number', type_='unique')
