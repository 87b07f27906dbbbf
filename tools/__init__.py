"""Local-only tools, never inlined into kernels: a package per job, each tool run as
`python -m tools.<package>.<tool>` from the repository root."""
