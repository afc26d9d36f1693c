#!/usr/bin/env python3
"""Generate src/core/api/ecs.rs, the manifest types, from the ECS model in botocore.

    scripts/gen-ecs-model.py            # rewrite src/core/api/ecs.rs
    scripts/gen-ecs-model.py --check    # exit 1 if it is out of date with the installed model

The model is read from the installed `botocore` package (pinned in scripts/test.sh), never
copied into the repository. Every structure reachable from the inputs of
RegisterTaskDefinition, CreateService and UpdateService becomes a serde struct under its
model name, with every member under its API name; enums, ranges, lengths and patterns
become `Validate` checks. Upgrading is: bump the pin, run this, read the diff.
"""

import argparse
import difflib
import pathlib
import re
import subprocess
import sys

import botocore
import botocore.session

OUT = pathlib.Path(__file__).resolve().parent.parent / "src/core/api/ecs.rs"

ROOTS = ["RegisterTaskDefinition", "CreateService", "UpdateService"]
# Members of CreateService that are ecsync's to derive, not the manifest's to declare.
SERVICE_DERIVED = ["cluster", "serviceName", "taskDefinition", "clientToken"]
# ecsync's own spellings, accepted next to the API's.
ALIASES = {("LoadBalancer", "targetGroupArn"): "targetGroup"}
RUST_NAMES = {"sizeInGiB": "size_in_gib", "type": "r#type"}
RENAMED_SHAPES = {"RegisterTaskDefinitionRequest": "TaskDefinition"}


def snake(name):
    if name in RUST_NAMES:
        return RUST_NAMES[name]
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def upper_snake(name):
    return snake(name).replace("r#", "").upper()


def camel(name):
    return "".join(w.capitalize() for w in snake(name).replace("r#", "").split("_"))


def rust_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Gen:
    def __init__(self, model):
        self.model = model
        self.structs = {}  # name -> shape, in discovery order
        self.enums = {}  # shape name -> values
        self.patterns = {}  # shape name -> pattern
        for op in ROOTS:
            self.walk(model.operation_model(op).input_shape)

    def walk(self, shape):
        t = shape.type_name
        if t == "structure":
            if shape.name in self.structs:
                return
            self.structs[shape.name] = shape
            for m in shape.members.values():
                self.walk(m)
        elif t == "list":
            self.walk(shape.member)
        elif t == "map":
            self.walk(shape.value)
        elif t == "string":
            if "enum" in shape.metadata:
                self.enums[shape.name] = shape.metadata["enum"]
            if "pattern" in shape.metadata:
                self.patterns[shape.name] = shape.metadata["pattern"]

    def type_name(self, shape):
        return RENAMED_SHAPES.get(shape.name, shape.name)

    def rust_type(self, shape):
        t = shape.type_name
        if t == "structure":
            return self.type_name(shape)
        if t == "list":
            return f"Vec<{self.rust_type(shape.member)}>"
        if t == "map":
            return f"BTreeMap<String, {self.rust_type(shape.value)}>"
        return {
            "string": "String",
            "integer": "i32",
            "long": "i64",
            "boolean": "bool",
            "double": "f64",
            "float": "f64",
            "timestamp": "String",
        }[t]

    def field(self, owner, name, shape, required, out):
        ty = self.rust_type(shape)
        attrs = [f"rename = {rust_string(name)}"]
        alias = ALIASES.get((owner, name))
        if alias:
            attrs.append(f"alias = {rust_string(alias)}")
        is_string = shape.type_name == "string"
        is_enum = is_string and "enum" in shape.metadata
        top_required = owner == "RegisterTaskDefinitionRequest"
        if required and not top_required:
            if is_string:
                attrs.append('deserialize_with = "de::string"')
            out.append(f"    #[serde({', '.join(attrs)})]")
            out.append(f"    pub {snake(name)}: {ty},")
            return
        if required:  # the describe wrapper leaves them out; validation names them
            attrs.append("default")
            out.append(f"    #[serde({', '.join(attrs)})]")
            out.append(f"    pub {snake(name)}: {ty},")
            return
        attrs += ["default", 'skip_serializing_if = "Option::is_none"']
        if shape.name == "Tags":
            attrs.append('deserialize_with = "de::tags"')
        elif is_enum:
            attrs.append('deserialize_with = "de::enum_or_absent"')
        elif is_string:
            attrs.append('deserialize_with = "de::opt_string"')
        out.append(f"    #[serde({', '.join(attrs)})]")
        out.append(f"    pub {snake(name)}: Option<{ty}>,")

    def checks(self, shape, expr, path, depth, out, indent):
        """Statements validating `expr` (a reference to a value of `shape`) at `path`."""
        pad = " " * indent
        t = shape.type_name
        meta = shape.metadata
        if t == "structure":
            out.append(f"{pad}{expr}.validate(&{path}, out);")
        elif t == "list":
            if "min" in meta or "max" in meta:
                out.append(
                    f"{pad}check::count({expr}.len(), {meta.get('min', 0)}, {meta.get('max', 'usize::MAX')}, &{path}, out);"
                )
            inner = []
            v = f"x{depth}"
            self.checks(shape.member, v, f"{path}.index(i{depth})", depth + 1, inner, indent + 4)
            if inner:
                out.append(f"{pad}for (i{depth}, {v}) in {expr}.iter().enumerate() {{")
                out.extend(inner)
                out.append(f"{pad}}}")
        elif t == "map":
            inner = []
            v = f"x{depth}"
            self.checks(shape.value, v, f"{path}.key(k{depth})", depth + 1, inner, indent + 4)
            if inner:
                out.append(f"{pad}for (k{depth}, {v}) in {expr} {{")
                out.extend(inner)
                out.append(f"{pad}}}")
        elif t == "string":
            if shape.name in self.enums:
                out.append(f"{pad}check::one_of({expr}, {upper_snake(shape.name)}, &{path}, out);")
            if "min" in meta or "max" in meta:
                out.append(
                    f"{pad}check::length({expr}, {meta.get('min', 0)}, {meta.get('max', 'usize::MAX')}, &{path}, out);"
                )
            if shape.name in self.patterns:
                out.append(f"{pad}check::pattern({expr}, {upper_snake(shape.name)}_PATTERN, &{path}, out);")
        elif t in ("integer", "long"):
            if "min" in meta or "max" in meta:
                lo = meta.get("min", "i64::MIN")
                hi = meta.get("max", "i64::MAX")
                out.append(f"{pad}check::range(i64::from(*{expr}), {lo}, {hi}, &{path}, out);")

    def struct(self, shape, skip=(), extras=False):
        name = self.type_name(shape)
        out = []
        members = [(n, m) for n, m in shape.members.items() if n not in skip]
        for n, m in members:
            self.field(shape.name, n, m, n in shape.required_members, out)
        body = []
        for n, m in members:
            inner = []
            access = f"self.{snake(n)}"
            required = n in shape.required_members
            v = "v"
            self.checks(m, v, f"at.key({rust_string(n)})", 0, inner, 12 if not required else 8)
            if not inner:
                continue
            if required:
                body.append(f"        let {v} = &{access};")
                body.extend(inner)
            else:
                body.append(f"        if let Some({v}) = &{access} {{")
                body.extend(inner)
                body.append("        }")
        return name, out, body

    def emit(self):
        lines = []
        w = lines.append
        w(f"// @generated by scripts/gen-ecs-model.py from botocore {botocore.__version__}")
        w(f"// (ecs {self.model.api_version}). Do not edit: change the generator and rerun it.")
        w("")
        w("use std::collections::BTreeMap;")
        w("")
        w("use serde::de::IgnoredAny;")
        w("use serde::{Deserialize, Serialize};")
        w("")
        w("use super::{Problems, Validate, check, de};")
        w("use crate::core::manifest::FieldPath;")
        w("")
        w(f"/// The botocore release these types were generated from.")
        w(f"pub const BOTOCORE_VERSION: &str = {rust_string(botocore.__version__)};")
        w("")
        ops = {op: self.model.operation_model(op).input_shape for op in ROOTS}
        for op, shape in ops.items():
            w(f"/// Every input member of `{op}`, as the model names them.")
            w(f"pub const {upper_snake(op)}_MEMBERS: &[&str] = &[")
            for n in shape.members:
                w(f"    {rust_string(n)},")
            w("];")
            w("")
        reg = ops["RegisterTaskDefinition"]
        described = self.model.shape_for("TaskDefinition")
        response_only = [n for n in described.members if n not in reg.members]
        w("/// Members of a `DescribeTaskDefinition` answer that are no input: a pasted")
        w("/// answer loads, and these are dropped with a warning.")
        w("pub const TASK_DEFINITION_RESPONSE_ONLY: &[&str] = &[")
        for n in response_only:
            w(f"    {rust_string(n)},")
        w("];")
        w("")
        create = ops["CreateService"]
        update = ops["UpdateService"]
        service_members = [n for n in create.members if n not in SERVICE_DERIVED]
        w("/// The members of `CreateService` a manifest declares (the rest ecsync derives).")
        w("pub const SERVICE_SPEC_MEMBERS: &[&str] = &[")
        for n in service_members:
            w(f"    {rust_string(n)},")
        w("];")
        w("")
        w("/// What `UpdateService` can change of a service in place.")
        w("#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]")
        w("pub enum UpdateMember {")
        updatable = [n for n in update.members if n in create.members and n not in ("cluster",)]
        for n in updatable:
            w(f"    #[serde(rename = {rust_string(n)})]")
            w(f"    {camel(n)},")
        w("}")
        w("")
        w("impl UpdateMember {")
        w("    pub const ALL: &[UpdateMember] = &[")
        for n in updatable:
            w(f"        UpdateMember::{camel(n)},")
        w("    ];")
        w("    pub fn api_name(self) -> &'static str {")
        w("        match self {")
        for n in updatable:
            w(f"            UpdateMember::{camel(n)} => {rust_string(n)},")
        w("        }")
        w("    }")
        w("    pub fn from_api_name(name: &str) -> Option<UpdateMember> {")
        w("        UpdateMember::ALL.iter().copied().find(|m| m.api_name() == name)")
        w("    }")
        w("}")
        w("")
        described = set(self.model.shape_for("Service").members) | set(
            self.model.shape_for("Deployment").members
        )
        # `role` comes back as `roleArn`.
        hidden = [n for n in service_members if n not in described and n != "role"]
        w("/// Members `CreateService` takes that no `DescribeServices` answer carries")
        w("/// (neither on the service nor on its deployments): sent, never compared.")
        w("pub const NOT_DESCRIBED_MEMBERS: &[&str] = &[")
        for n in hidden:
            w(f"    {rust_string(n)},")
        w("];")
        w("")
        paths = []

        def walk_paths(shape, prefix, seen):
            t = shape.type_name
            if prefix:
                paths.append(prefix)
            if shape.name == "Tags":
                paths.append(prefix + ".{}")
            elif t == "structure" and shape.name not in seen:
                for n, m in shape.members.items():
                    walk_paths(m, f"{prefix}.{n}" if prefix else n, seen | {shape.name})
            elif t == "list":
                walk_paths(shape.member, prefix + "[]", seen)
            elif t == "map":
                walk_paths(shape.value, prefix + ".{}", seen)

        for n in service_members:
            walk_paths(create.members[n], n, set())
        walk_paths(reg, "taskDefinition", set())
        w("/// Every path into a spec's API members, as `ecsync diff` prints them, with")
        w("/// `[]` for any list element and `{}` for any map key (tags are by key).")
        w("pub const SPEC_PATHS: &[&str] = &[")
        for path in sorted(set(paths)):
            w(f"    {rust_string(path)},")
        w("];")
        w("")
        create_only = [n for n in service_members if n not in update.members]
        w("/// Members `CreateService` takes and `UpdateService` does not: changing one")
        w("/// means a new service (tags excepted, which TagResource changes).")
        w("pub const CREATE_ONLY_MEMBERS: &[&str] = &[")
        for n in create_only:
            w(f"    {rust_string(n)},")
        w("];")
        w("")
        for ename, values in sorted(self.enums.items()):
            w(f"pub const {upper_snake(ename)}: &[&str] = &[{', '.join(rust_string(v) for v in values)}];")
        for pname, pattern in sorted(self.patterns.items()):
            w(f"pub const {upper_snake(pname)}_PATTERN: &str = {rust_string('^(?:' + pattern + ')$')};")
        w("")

        for sname, shape in self.structs.items():
            if sname == "UpdateServiceRequest":
                continue
            if sname == "CreateServiceRequest":
                name, fields, body = self.struct(shape, skip=SERVICE_DERIVED)
                w("/// `CreateService` input less what ecsync derives, with ecsync's own members")
                w("/// (`$extra`) declared by the caller, so the model stays the one source.")
                w("macro_rules! service_spec {")
                w("    ($(#[$meta:meta])* pub struct $name:ident { $($extra:tt)* }) => {")
                w("        $(#[$meta])*")
                w("        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]")
                w("        #[serde(deny_unknown_fields)]")
                w("        pub struct $name {")
                w("            $($extra)*")
                for f in fields:
                    w("        " + f.replace('"de::', '"crate::core::api::de::'))
                w("        }")
                w("")
                w("        impl $name {")
                w("            /// The model's checks of the API members.")
                w("            pub fn validate_api(&self, at: &$crate::core::manifest::FieldPath, out: &mut $crate::core::api::Problems) {")
                w("                use $crate::core::api::{Validate, check, ecs::*};")
                for b in body:
                    w("        " + b)
                w("            }")
                w("        }")
                w("    };")
                w("}")
                w("pub(crate) use service_spec;")
                w("")
                continue
            name, fields, body = self.struct(shape)
            doc = f"`{shape.name}`" + (" (the input of RegisterTaskDefinition)" if name != sname else "")
            w(f"/// {doc}")
            w("#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]")
            w("#[serde(deny_unknown_fields)]")
            w(f"pub struct {name} {{")
            lines.extend(fields)
            if sname == "RegisterTaskDefinitionRequest":
                for n in response_only:
                    w(f"    #[serde(rename = {rust_string(n)}, default, skip_serializing)]")
                    w(f"    pub {snake(n)}: Option<IgnoredAny>,")
                w("    /// A whole describe answer, `{taskDefinition: {...}}`: unwrapped on load.")
                w('    #[serde(rename = "taskDefinition", default, skip_serializing)]')
                w("    pub wrapped: Option<Box<TaskDefinition>>,")
            w("}")
            w("")
            w(f"impl Validate for {name} {{")
            if body:
                w("    fn validate(&self, at: &FieldPath, out: &mut Problems) {")
                lines.extend(body)
            else:
                w("    fn validate(&self, _at: &FieldPath, _out: &mut Problems) {")
            w("    }")
            w("}")
            w("")
            if sname == "RegisterTaskDefinitionRequest":
                w("impl TaskDefinition {")
                w("    /// The response-only members that were given, which a register never sends.")
                w("    pub fn response_only_members(&self) -> Vec<&'static str> {")
                w("        [")
                for n in response_only:
                    w(f"            ({rust_string(n)}, self.{snake(n)}.is_some()),")
                w("        ]")
                w("        .into_iter()")
                w("        .filter_map(|(name, given)| given.then_some(name))")
                w("        .collect()")
                w("    }")
                w("")
                w("    /// A describe answer pasted whole is the definition inside it; the")
                w("    /// response-only members are forgotten.")
                w("    pub fn unwrapped(mut self) -> TaskDefinition {")
                w("        let inner = match self.wrapped.take() {")
                w("            Some(inner) => *inner,")
                w("            None => self,")
                w("        };")
                w("        TaskDefinition {")
                for n in response_only:
                    w(f"            {snake(n)}: None,")
                w("            wrapped: None,")
                w("            ..inner")
                w("        }")
                w("    }")
                w("}")
                w("")
        return "\n".join(lines).rstrip() + "\n"


def rustfmt(text):
    """The file as `cargo fmt` leaves it, so that formatting never makes it stale."""
    out = subprocess.run(
        ["rustfmt", "--edition", "2024", "--emit", "stdout"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the generated file is stale")
    args = ap.parse_args()
    model = botocore.session.get_session().get_service_model("ecs")
    text = rustfmt(Gen(model).emit())
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(True), text.splitlines(True), str(OUT), "generated", n=1
                )
            )
            print(
                f"\n{OUT} is out of date with botocore {botocore.__version__}: run scripts/gen-ecs-model.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT} from botocore {botocore.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
