"""The SQL of ``posfleet notices verify``, per dialect: GENERATED, do not edit.

Written by ``scripts/compile_verify_sql.py`` from
:data:`fleet.core.clauses.VERIFY_STATEMENTS` (what SQLAlchemy compiles them to); run
by :mod:`fleet.core.dbapi` on plain DB-API. ``tests/fleet/core/test_verify_sql.py``
fails when this differs from what the statements compile to today."""

# fmt: off
# ruff: noqa: E501

STATEMENTS: dict[str, dict[str, str]] = {
    'schema_revision': {
        'sqlite': 'SELECT alembic_version.version_num \nFROM alembic_version',
        'postgresql': 'SELECT alembic_version.version_num \nFROM alembic_version',
    },
    'message_by_code': {
        'sqlite': 'SELECT message.id, message.code, message.merchant_id, message.channel, message.address, message.kinds, message.subject, message.body, message.status, message.created_at, message.sent_at \nFROM message \nWHERE message.code = :code',
        'postgresql': 'SELECT message.id, message.code, message.merchant_id, message.channel, message.address, message.kinds, message.subject, message.body, message.status, message.created_at, message.sent_at \nFROM message \nWHERE message.code = %(code)s::VARCHAR',
    },
    'merchant_region': {
        'sqlite': 'SELECT merchant.region \nFROM merchant \nWHERE merchant.id = :id',
        'postgresql': 'SELECT merchant.region \nFROM merchant \nWHERE merchant.id = %(id)s::VARCHAR',
    },
    'merchant_name': {
        'sqlite': 'SELECT merchant.name \nFROM merchant \nWHERE merchant.id = :id',
        'postgresql': 'SELECT merchant.name \nFROM merchant \nWHERE merchant.id = %(id)s::VARCHAR',
    },
    'notices_of_message': {
        'sqlite': 'SELECT notice.id, notice.kind, notice.ref, notice.created_at \nFROM notice \nWHERE notice.message_id = :message_id ORDER BY notice.id',
        'postgresql': 'SELECT notice.id, notice.kind, notice.ref, notice.created_at \nFROM notice \nWHERE notice.message_id = %(message_id)s::INTEGER ORDER BY notice.id',
    },
    'audit_insert': {
        'sqlite': 'INSERT INTO audit (at, actor, action, target, details, reason) VALUES (:at, :actor, :action, :target, :details, :reason)',
        'postgresql': 'INSERT INTO audit (at, actor, action, target, details, reason) VALUES (%(at)s::TIMESTAMP WITHOUT TIME ZONE, %(actor)s::VARCHAR, %(action)s::VARCHAR, %(target)s::VARCHAR, %(details)s::JSON, %(reason)s::VARCHAR)',
    },
    'verification_insert': {
        'sqlite': 'INSERT INTO verification (at, code, genuine, message_id, merchant_id, region, actor, address, note) VALUES (:at, :code, :genuine, :message_id, :merchant_id, :region, :actor, :address, :note) RETURNING id',
        'postgresql': 'INSERT INTO verification (at, code, genuine, message_id, merchant_id, region, actor, address, note) VALUES (%(at)s::TIMESTAMP WITHOUT TIME ZONE, %(code)s::VARCHAR, %(genuine)s, %(message_id)s::INTEGER, %(merchant_id)s::VARCHAR, %(region)s::VARCHAR, %(actor)s::VARCHAR, %(address)s::VARCHAR, %(note)s::VARCHAR) RETURNING verification.id',
    },
    'event_insert': {
        'sqlite': 'INSERT INTO event (kind, payload, occurred_at, fanned_out) VALUES (:kind, :payload, :occurred_at, :fanned_out) RETURNING id',
        'postgresql': 'INSERT INTO event (kind, payload, occurred_at, fanned_out) VALUES (%(kind)s::VARCHAR, %(payload)s::JSON, %(occurred_at)s::TIMESTAMP WITHOUT TIME ZONE, %(fanned_out)s) RETURNING event.id',
    },
}
"""Each statement's text per dialect (sqlite: ``:name``, postgresql: ``%(name)s``)."""

PARAMS: dict[str, dict[str, str]] = {
    'schema_revision': {},
    'message_by_code': {'code': 'text'},
    'merchant_region': {'id': 'text'},
    'merchant_name': {'id': 'text'},
    'notices_of_message': {'message_id': 'int'},
    'audit_insert': {'at': 'instant', 'actor': 'text', 'action': 'text', 'target': 'text', 'details': 'json', 'reason': 'text'},
    'verification_insert': {'at': 'instant', 'code': 'text', 'genuine': 'bool', 'message_id': 'int', 'merchant_id': 'text', 'region': 'text', 'actor': 'text', 'address': 'text', 'note': 'text'},
    'event_insert': {'kind': 'text', 'payload': 'json', 'occurred_at': 'instant', 'fanned_out': 'bool'},
}
"""Each statement's parameters and their kinds."""

COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    'schema_revision': (('version_num', 'text'),),
    'message_by_code': (('id', 'int'), ('code', 'text'), ('merchant_id', 'text'), ('channel', 'text'), ('address', 'text'), ('kinds', 'json'), ('subject', 'text'), ('body', 'text'), ('status', 'text'), ('created_at', 'instant'), ('sent_at', 'instant')),
    'merchant_region': (('region', 'text'),),
    'merchant_name': (('name', 'text'),),
    'notices_of_message': (('id', 'int'), ('kind', 'text'), ('ref', 'text'), ('created_at', 'instant')),
    'audit_insert': (),
    'verification_insert': (('id', 'int'),),
    'event_insert': (('id', 'int'),),
}
"""Each statement's result columns (in order) and their kinds."""
