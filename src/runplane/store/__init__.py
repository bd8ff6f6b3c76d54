"""Persistence: models, queries and migrations. Services call these; routers never do."""
