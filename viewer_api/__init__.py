"""The public, read-only side: published artifacts, manifests, page recognition and the phone viewer.

It reads only the published catalog and the asset store (see ``published.py``) — never drafts, never
the authoring database — so it can run as many stateless copies as traffic needs.

Two apps register it, through ``register_public``: its own (``viewer_api.app.create_public_app``, served by
``baonhung serve-public``) and the one-process newsroom app (``builder.app.create_app``, ``baonhung serve``).
"""


def register_public(app, state) -> None:
    """The public blueprints on ``app``; ``state`` (``app.extensions["baonhung"]``) carries ``settings``, ``store``,
    ``published``, ``sessionmaker`` (the readers database, or None) and ``csrf_exempt_blueprints``."""
    from .public import public_bp

    app.register_blueprint(public_bp)
    state.csrf_exempt_blueprints.add(public_bp.name)
    from .events_api import events_bp  # readership events (issue 26): append-only, its own store

    app.register_blueprint(events_bp)
    state.csrf_exempt_blueprints.add(events_bp.name)
    from .readers_api import readers_bp  # reader accounts (issue 27): their own double-submit CSRF check

    app.register_blueprint(readers_bp)
    state.csrf_exempt_blueprints.add(readers_bp.name)
    from .premium import premium_bp  # premium parts (issue 27): GET only, signed URLs bound to the reader cookie

    app.register_blueprint(premium_bp)
    state.csrf_exempt_blueprints.add(premium_bp.name)
    from .viewer import viewer_bp  # the phone viewer: its page shell, vendor files and service worker

    app.register_blueprint(viewer_bp)
    state.csrf_exempt_blueprints.add(viewer_bp.name)
