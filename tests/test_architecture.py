"""The import rules of docs/architecture.md hold in the code: each module imports only lower layers
(imports inside functions included), only kit/ui imports ipywidgets, every module has a layer."""
import ast
import re
from pathlib import Path

from kit import env

KIT = env.repo_root() / "kit"
DOC = env.repo_root() / "docs" / "architecture.md"


def layers() -> dict[str, int]:
    """{"kit.env": 0, ...} from the table under '## Import rules' in docs/architecture.md."""
    text = DOC.read_text(encoding="utf-8").split("## Import rules", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in text.splitlines():
        match = re.match(r"^\|\s*(\d+)\s*\|(.*?)\|", line)
        if match:
            for name in re.findall(r"`(kit(?:\.\w+)?)`", match.group(2)):
                out[name] = int(match.group(1))
    return out


def unit(module: str) -> str:
    """kit.train.sft -> kit.train; kit.env -> kit.env; kit -> kit."""
    return ".".join(module.split(".")[:2])


def module_name(path: Path) -> str:
    parts = path.relative_to(KIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "kit":
                found += [(node.lineno, f"kit.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def sources():
    return sorted(p for p in KIT.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_doc_has_a_layer_for_every_module():
    table = layers()
    assert table["kit.env"] == 0 and table["kit.ui"] > table["kit.train"] > table["kit.scoring"]
    missing = sorted({unit(module_name(p)) for p in sources()} - set(table) - {"kit"})
    assert not missing, f"give these modules a layer in {DOC.name} (## Import rules): {missing}"


def test_modules_import_only_lower_layers():
    table = layers()
    broken = []
    for path in sources():
        source = unit(module_name(path))
        if source == "kit":
            continue
        for line, target in imports(path):
            target = unit(target)
            if not target.startswith("kit.") or target == source or target not in table:
                continue
            if table[target] >= table[source]:
                broken.append(f"{path.relative_to(KIT.parent)}:{line}: {source} (layer {table[source]}) imports "
                              f"{target} (layer {table[target]})")
    assert not broken, "imports against docs/architecture.md's rules:\n" + "\n".join(broken)


def test_only_kit_ui_imports_ipywidgets():
    offenders = [f"{p.relative_to(KIT.parent)}:{line}" for p in sources() if "ui" not in p.relative_to(KIT).parts[:1]
                 for line, target in imports(p) if target.split(".")[0] == "ipywidgets"]
    assert not offenders, offenders


def test_the_rule_checker_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from kit import evaluate\n    import kit.ui.memory\n")
    assert imports(bad) == [(2, "kit.evaluate"), (3, "kit.ui.memory")]
    table = layers()
    assert table[unit("kit.ui.memory")] > table["kit.scoring"] and table["kit.evaluate"] > table["kit.scoring"]
