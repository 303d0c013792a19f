"""The inventory: catalog, merchants and terminals: schemas, import jobs, CRUD."""
