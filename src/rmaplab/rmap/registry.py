"""The one registry of reverse-mapping schemes: name → class.

Everything that names a scheme (``Config``, every command's ``--scheme``,
``compare``, ``sweep``, ``bench``, ``replay``, ``check-scheme``) asks here.
A scheme joins in one of three ways:

- built in (the five of the package, and ``pure_anon_vma``);
- an installed package's entry point in the group ``rmaplab.schemes``
  (``name = "module:Class"``), found the first time a name is looked up;
- a spec ``"path/to/file.py:ClassName"`` (or ``"package.module:ClassName"``)
  given wherever a scheme name is: the file is imported and the class
  registered under its ``name`` attribute.

A scheme class subclasses ``rmaplab.rmap.scheme.RmapScheme``; the contract
it must keep is in that module's docstring and in docs/writing-a-scheme.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from rmaplab.errors import ConfigError
from rmaplab.rmap.scheme import RmapScheme

ENTRY_POINT_GROUP = "rmaplab.schemes"

_SCHEMES: dict[str, type[RmapScheme]] = {}
#: spec → the name its class was registered under (plugins and entry points)
_SPECS: dict[str, str] = {}
_entry_points_loaded = False


def _builtins() -> None:
    if _SCHEMES:
        return
    from rmaplab.rmap.anon_vma import AnonVmaScheme
    from rmaplab.rmap.anon_vma_chain import AnonVmaChainScheme
    from rmaplab.rmap.anonmm import AnonmmScheme
    from rmaplab.rmap.none import NoRmapScheme
    from rmaplab.rmap.pte_chain import PteChainScheme
    for cls in (AnonVmaScheme, AnonmmScheme, PteChainScheme, NoRmapScheme, AnonVmaChainScheme):
        _SCHEMES[cls.name] = cls
    try:
        from rmaplab.rmap.pure_anon_vma import PureAnonVmaScheme
    except ImportError:
        pass
    else:
        _SCHEMES[PureAnonVmaScheme.name] = PureAnonVmaScheme


def register(cls: type[RmapScheme], name: str | None = None) -> str:
    """Add a scheme class; returns the name it is known by. A name already
    taken by another class is an error (schemes are compared by name)."""
    _builtins()
    if not (isinstance(cls, type) and issubclass(cls, RmapScheme)):
        raise ConfigError(f"{cls!r} is not a subclass of rmaplab.rmap.scheme.RmapScheme")
    name = name or cls.name
    if not name or name == RmapScheme.name:
        raise ConfigError(f"scheme class {cls.__name__} needs a 'name' of its own")
    old = _SCHEMES.get(name)
    if old is not None and old is not cls:
        raise ConfigError(f"scheme name {name!r} is taken by {old.__module__}.{old.__name__}")
    _SCHEMES[name] = cls
    return name


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register(ep.load(), ep.name)
        except Exception as e:  # a broken plugin package must not break the others
            print(f"rmaplab: scheme entry point {ep.name!r} ({ep.value}) failed to load: {e}",
                  file=sys.stderr)


def _load_spec(spec: str) -> str:
    """Import ``file.py:Class`` or ``module:Class`` and register the class."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr.isidentifier():
        raise ConfigError(f"bad scheme {spec!r}: a name, or FILE.py:CLASS or MODULE:CLASS")
    try:
        if where.endswith(".py"):
            path = os.path.abspath(where)
            if not os.path.exists(path):
                raise ConfigError(f"scheme file {where!r} does not exist")
            modname = f"rmaplab_plugin_{abs(hash(path)):x}"
            mod = sys.modules.get(modname)
            if mod is None:
                loader_spec = importlib.util.spec_from_file_location(modname, path)
                assert loader_spec is not None and loader_spec.loader is not None
                mod = importlib.util.module_from_spec(loader_spec)
                sys.modules[modname] = mod
                loader_spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(where)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"cannot load scheme {spec!r}: {type(e).__name__}: {e}") from None
    cls = getattr(mod, attr, None)
    if cls is None:
        raise ConfigError(f"{where!r} has no class {attr!r}")
    return register(cls)


def resolve(spec: str) -> str:
    """The registered name of a scheme name or spec (loading it if needed)."""
    _builtins()
    if spec in _SCHEMES:
        return spec
    if spec in _SPECS:
        return _SPECS[spec]
    if ":" in spec:
        _SPECS[spec] = name = _load_spec(spec)
        return name
    _load_entry_points()
    if spec in _SCHEMES:
        return spec
    raise ConfigError(f"unknown scheme {spec!r}; choose from {', '.join(names())}, "
                      f"or give FILE.py:CLASS")


def get(spec: str) -> type[RmapScheme]:
    """The class of a scheme name or spec."""
    return _SCHEMES[resolve(spec)]


def names() -> list[str]:
    """Every registered scheme name: the built-ins, then entry points and
    the plugins loaded so far."""
    _builtins()
    _load_entry_points()
    return list(_SCHEMES)
