"""Alembic environment of the platform: runs online on the connection handed in by `nextbest.platform.db.migrate`."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the platform migrations through nextbest.platform.db.migrate(engine)")

context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
