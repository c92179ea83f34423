"""Rules that relate fields of a task definition to each other.

Pydantic checks each field alone; these pure functions check the rest and return *every*
problem at once with its exact JSON path, so a user fixes a file in one pass instead of one
error per attempt. Warnings are things hatoba accepts but that probably surprise the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hatoba.model.errors import FieldError
from hatoba.model.log_outputs import output_from_log_configuration
from hatoba.model.taskdef import ContainerDefinition, DependencyCondition, TaskDefinition
from hatoba.model.taskdef_logs import check_log_settings


@dataclass
class Findings:
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[FieldError] = field(default_factory=list)

    def extend(self, other: Findings) -> None:
        self.errors.extend(other.errors)
        self.warnings.extend(other.warnings)


def container_path(index: int) -> str:
    return f"containerDefinitions[{index}]"


def check_container(index: int, c: ContainerDefinition) -> Findings:
    """Rules within one container: something to run, the shell rule, limits, duplicates."""
    out = Findings()
    at = container_path(index)
    _check_command(at, c, out)
    if (
        c.memory is not None
        and c.memory_reservation is not None
        and (c.memory_reservation > c.memory)
    ):
        out.errors.append(
            FieldError(
                f"{at}.memoryReservation",
                f"must be ≤ memory ({c.memory} MiB): the soft limit cannot exceed the hard one",
            )
        )
    seen_env: dict[str, int] = {}
    for j, env in enumerate(c.environment):
        if env.name in seen_env:
            out.errors.append(
                FieldError(
                    f"{at}.environment[{j}].name",
                    f"duplicate variable {env.name!r} (also environment[{seen_env[env.name]}])",
                )
            )
        seen_env.setdefault(env.name, j)
    seen_secret: dict[str, int] = {}
    for j, secret in enumerate(c.secrets):
        if secret.name in seen_secret:
            out.errors.append(
                FieldError(
                    f"{at}.secrets[{j}].name",
                    f"duplicate secret {secret.name!r} (also secrets[{seen_secret[secret.name]}])",
                )
            )
        seen_secret.setdefault(secret.name, j)
        if secret.name in seen_env:
            out.warnings.append(
                FieldError(
                    f"{at}.secrets[{j}].name",
                    f"{secret.name!r} is also set in environment[{seen_env[secret.name]}]; "
                    "the secret's value is used",
                )
            )
    seen_ulimit: dict[str, int] = {}
    for j, ulimit in enumerate(c.ulimits):
        if ulimit.name in seen_ulimit:
            out.errors.append(
                FieldError(
                    f"{at}.ulimits[{j}].name",
                    f"duplicate ulimit {ulimit.name!r} (also ulimits[{seen_ulimit[ulimit.name]}])",
                )
            )
        seen_ulimit.setdefault(ulimit.name, j)
        if ulimit.hard_limit != -1 and not -1 < ulimit.soft_limit <= ulimit.hard_limit:
            out.errors.append(
                FieldError(
                    f"{at}.ulimits[{j}].softLimit",
                    f"must be ≤ hardLimit ({ulimit.hard_limit})",
                )
            )
    for j, port in enumerate(c.port_mappings):
        if (port.container_port is None) == (port.container_port_range is None):
            out.errors.append(
                FieldError(
                    f"{at}.portMappings[{j}].containerPort",
                    "set exactly one of containerPort or containerPortRange",
                )
            )
    for j, env_file in enumerate(c.environment_files):
        if env_file.type == "s3":
            out.warnings.append(
                FieldError(
                    f"{at}.environmentFiles[{j}].type",
                    'hatoba does not fetch "s3" environment files; the task will fail to start '
                    'unless this is changed to "file" with a local path',
                )
            )
    if c.log_configuration is not None:  # forwarded (fluentd, awsfirelens) or local only
        lc = c.log_configuration
        mapped = output_from_log_configuration(
            "",
            c.name,
            lc.log_driver,
            lc.options,
            at=f"{at}.logConfiguration",
            has_secret_options=bool(lc.secret_options),
        )
        out.errors.extend(mapped.errors)
        out.warnings.extend(mapped.warnings)
    out.errors.extend(check_log_settings(at, c))  # hatoba's capture options and logFiles
    return out


def _check_command(at: str, c: ContainerDefinition, out: Findings) -> None:
    if isinstance(c.command, str) and not c.shell:
        out.errors.append(
            FieldError(
                f"{at}.command",
                'a string command needs "shell": true (it then runs as /bin/sh -c STRING); '
                'otherwise use a list like ["python", "app.py"]',
            )
        )
    elif c.shell and not isinstance(c.command, str):
        out.errors.append(
            FieldError(f"{at}.command", 'with "shell": true, command must be a single string')
        )
    if not c.command and not c.entry_point:
        out.errors.append(
            FieldError(
                f"{at}.command",
                "nothing to run: set command or entryPoint (the process driver does not run "
                "images)",
            )
        )


def check_task_definition(td: TaskDefinition) -> Findings:
    """Every cross-field rule: per container, then across containers and against task limits."""
    out = Findings()
    containers = td.container_definitions
    for i, c in enumerate(containers):
        out.extend(check_container(i, c))

    index: dict[str, int] = {}
    for i, c in enumerate(containers):
        if c.name in index:
            out.errors.append(
                FieldError(
                    f"{container_path(i)}.name",
                    f"duplicate container name {c.name!r} (also {container_path(index[c.name])})",
                )
            )
        index.setdefault(c.name, i)

    if not any(c.essential for c in containers):
        out.errors.append(
            FieldError("containerDefinitions", "at least one container must be essential")
        )

    _check_dependencies(td, index, out)
    _check_resources(td, out)
    _check_host_ports(td, out)
    return out


def _check_dependencies(td: TaskDefinition, index: dict[str, int], out: Findings) -> None:
    containers = td.container_definitions
    edges: dict[str, list[str]] = {c.name: [] for c in containers}
    for i, c in enumerate(containers):
        for j, dep in enumerate(c.depends_on):
            at = f"{container_path(i)}.dependsOn[{j}]"
            if dep.container_name == c.name:
                out.errors.append(
                    FieldError(f"{at}.containerName", "a container cannot depend on itself")
                )
                continue
            if dep.container_name not in index:
                out.errors.append(
                    FieldError(
                        f"{at}.containerName",
                        f"no container named {dep.container_name!r} in this task definition",
                    )
                )
                continue
            edges[c.name].append(dep.container_name)
            target = containers[index[dep.container_name]]
            if dep.condition is DependencyCondition.HEALTHY and target.health_check is None:
                out.errors.append(
                    FieldError(
                        f"{at}.condition",
                        f"HEALTHY needs container {dep.container_name!r} to have a healthCheck",
                    )
                )
    for cycle in _cycles(edges):
        out.errors.append(
            FieldError(
                f"{container_path(index[cycle[0]])}.dependsOn",
                "dependency cycle: " + " → ".join(cycle),
            )
        )


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """Each dependency cycle once, starting at its first container in definition order."""
    found: list[list[str]] = []
    seen_members: set[frozenset[str]] = set()
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        for nxt in edges[node]:
            if nxt in stack:
                cycle = stack[stack.index(nxt) :]
                key = frozenset(cycle)
                if key not in seen_members:
                    seen_members.add(key)
                    order = list(edges)
                    start = min(range(len(cycle)), key=lambda k: order.index(cycle[k]))
                    rotated = cycle[start:] + cycle[:start]
                    found.append([*rotated, rotated[0]])
            elif nxt not in done:
                visit(nxt, [*stack, nxt])
        done.add(node)

    for name in edges:
        if name not in done:
            visit(name, [name])
    return found


def _check_resources(td: TaskDefinition, out: Findings) -> None:
    containers = td.container_definitions
    if td.memory is not None:
        wanted = [c.memory or c.memory_reservation for c in containers]
        if any(w is not None for w in wanted):
            total = sum(w or 0 for w in wanted)
            if total > td.memory:
                out.errors.append(
                    FieldError(
                        "memory",
                        f"containers need {total} MiB (sum of memory, else memoryReservation), "
                        f"more than the task's {td.memory} MiB",
                    )
                )
    if td.cpu is not None:
        total_cpu = sum(c.cpu for c in containers)
        if total_cpu > td.cpu:
            out.errors.append(
                FieldError(
                    "cpu",
                    f"containers reserve {total_cpu} cpu units, more than the task's {td.cpu}",
                )
            )


def _check_host_ports(td: TaskDefinition, out: Findings) -> None:
    """Two processes cannot bind the same host port, so a task cannot claim it twice."""
    claimed: dict[tuple[int, str], str] = {}
    for i, c in enumerate(td.container_definitions):
        for j, port in enumerate(c.port_mappings):
            if not port.host_port:
                continue
            at = f"{container_path(i)}.portMappings[{j}].hostPort"
            key = (port.host_port, port.protocol)
            if key in claimed:
                out.errors.append(
                    FieldError(
                        at,
                        f"host port {port.host_port}/{port.protocol} also used by {claimed[key]}",
                    )
                )
            claimed.setdefault(key, at)
