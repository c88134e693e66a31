"""rmaplab: an executable model of Linux reverse mapping for anonymous pages.

Layers (imports go down only)::

    cli            commands, argument parsing, output formats
    show           ASCII layouts, /proc/<pid>/maps text
    trace          trace reader, replay, results and state dumps
    check          invariants, brute-force rmap completeness
    kernel         the facade: processes, system calls, configuration
    mm             mmap/mprotect/mremap/memory/fork: the core
    rmap           the reverse-mapping schemes behind one interface
    asm            page size, pte bit layout (the arch headers)
"""

__version__ = "0.1.0"
