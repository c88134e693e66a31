"""rmaplab: an executable model of Linux reverse mapping for anonymous pages.

Layers (imports go down only)::

    cli            commands, argument parsing, output formats
    show           ASCII layouts, /proc/<pid>/maps text
    trace          trace reader, replay, results and state dumps
    check          invariants, brute-force rmap completeness
    kernel         the facade: processes, system calls
    mm             mmap/mprotect/mremap/memory/fork: the core
    rmap           the reverse-mapping schemes behind one interface
    config         era rules and sizes (names a scheme through rmap's registry)
    asm, include   page size, pte bits; vm_flags and page flags; errors
"""

__version__ = "0.1.0"
