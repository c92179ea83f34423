"""Which ECS task-definition fields hatoba uses, keeps without using, or lets ECS-style input carry.

hatoba accepts AWS ECS ``RegisterTaskDefinition`` JSON as it is, so people can move a task
definition between ECS and hatoba without editing it. Fields that make no sense for local
processes (VPC networking, IAM roles, Docker-only knobs) are *kept* verbatim and exported
back, never silently dropped, so a round trip through hatoba loses nothing. Fields that only
appear in ``aws ecs describe-task-definition`` output are accepted (people paste that output)
and dropped, because hatoba assigns its own values.

Keeping the lists here, apart from the models, makes "is this field supported?" a one-file
question and keeps the model module short.
"""

from __future__ import annotations

# Task level: ECS RegisterTaskDefinition fields that hatoba keeps but does not act on.
TASK_FIELDS_NOT_USED: frozenset[str] = frozenset(
    {
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "volumes",
        "placementConstraints",
        "requiresCompatibilities",
        "pidMode",
        "ipcMode",
        "proxyConfiguration",
        "inferenceAccelerators",
        "ephemeralStorage",
        "runtimePlatform",
        "enableFaultInjection",
    }
)

# Container level: ECS ContainerDefinition fields that hatoba keeps but does not act on.
CONTAINER_FIELDS_NOT_USED: frozenset[str] = frozenset(
    {
        "repositoryCredentials",
        "links",
        "restartPolicy",
        "mountPoints",
        "volumesFrom",
        "linuxParameters",
        "startTimeout",
        "versionConsistency",
        "hostname",
        "disableNetworking",
        "privileged",
        "readonlyRootFilesystem",
        "dnsServers",
        "dnsSearchDomains",
        "extraHosts",
        "dockerSecurityOptions",
        "interactive",
        "pseudoTerminal",
        "dockerLabels",
        "systemControls",
        "resourceRequirements",
        "firelensConfiguration",
        "credentialSpecs",
    }
)

# Present in ``describe-task-definition`` output only; hatoba assigns its own equivalents.
ASSIGNED_FIELDS: frozenset[str] = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
    }
)

# Keys allowed next to ``taskDefinition`` in the describe-task-definition wrapper.
DESCRIBE_WRAPPER_KEY = "taskDefinition"
DESCRIBE_WRAPPER_SIBLINGS: frozenset[str] = frozenset({"tags"})

NOT_USED_MESSAGE = "not used by hatoba (kept, exported back)"
ASSIGNED_MESSAGE = "ignored, assigned by hatoba"
IMAGE_MESSAGE = "recorded; the process driver runs entryPoint + command, not the image"
