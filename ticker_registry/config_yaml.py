"""Reading a config file: strict YAML, UTF-8, at most :data:`MAX_CONFIG_BYTES`.

The loader is PyYAML's ``SafeLoader`` without anchors and aliases (a 400-byte
alias bomb expands to gigabytes) and without duplicate keys (silently
last-wins otherwise). What the file means is :mod:`ticker_registry.config`'s
business; this module only turns it into a mapping or a
:class:`~ticker_registry.exceptions.ConfigError` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .exceptions import ConfigError

__all__ = ["MAX_CONFIG_BYTES", "read_config_file"]

#: Largest config file read (characters); configs are a few hundred bytes.
MAX_CONFIG_BYTES = 1 << 20


def _strict_loader() -> type:
    """A YAML SafeLoader that refuses anchors, aliases and duplicate keys."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.constructor.ConstructorError(
                    None, None, f"YAML aliases (*{event.anchor}) are not allowed in a config",
                    event.start_mark)
            event = self.peek_event()
            if getattr(event, "anchor", None):
                raise yaml.constructor.ConstructorError(
                    None, None, f"YAML anchors (&{event.anchor}) are not allowed in a config",
                    event.start_mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (each key may appear once)",
                        key_node.start_mark)
                if isinstance(key, (str, int, float, bool)):
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def read_config_file(path: Path) -> dict[Any, Any]:
    """The mapping a YAML config file holds (an empty file is an empty mapping).

    Raises
    ------
    ConfigError
        The file cannot be read, is not UTF-8, is larger than :data:`MAX_CONFIG_BYTES`,
        is not strict YAML, or does not hold a mapping.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (bad byte at offset "
                          f"{exc.start}); save it as UTF-8 YAML") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}; "
                          "check the path given to --config") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {str(path)!r} is {len(text):,} characters; a config is at "
                          f"most {MAX_CONFIG_BYTES:,}: check that this is the right file")
    try:
        data = yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: "
                          f"{str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys to values, "
                          f"got {type(data).__name__}")
    return dict(data)
