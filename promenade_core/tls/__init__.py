"""HTTPS for local names: a per-user CA, leaf certificates minted per name, an SNI
server context, and installing the CA where browsers look (`promenade trust`).

The pieces, each in a module named for what it owns:
- `names`: which names the CA may sign (pure; the name constraints);
- `files`: the CA folder and its 0600 files, created and checked safely;
- `ca`: the CA itself (`ensure_ca`, `load_ca`);
- `leaf`: minting, caching and re-minting leaf certificates (`LeafStore`);
- `context`: `server_context(store)`, one listening socket serving many names;
- `trust`: the system store and the NSS databases (`install`, `uninstall`, `status`).

The router (a later part of issue 15) needs only
`server_context(LeafStore(ensure_ca()))` — or `load_ca()` when it must not create one.
"""
