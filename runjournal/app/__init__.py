"""The journal: load, command, save; claims, views, audit. Imports the domain, projections and adapters, never runtime or cli."""
