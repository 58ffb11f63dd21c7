"""The search index: words, tasks, ranking, and what a caller may see.

The catalog here is small and written out, so every ranking below is a whole list; the
retrieval benchmark over real documents is bench/search.py (and its floor, in the corpus test
at the end).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from toolbridge.search import SearchIndex, SearchIndexes
from toolbridge.search_document import document, tool_intent
from toolbridge.search_query import (
    TaskQuery,
    initials,
    read_task,
    task_intent,
    task_words,
    words,
)
from toolbridge.tools import Annotations, HttpOperation, JsonSchema, Method, Tool


def tool(
    name: str,
    method: Method,
    path: str,
    description: str,
    *,
    source: str = "api",
    deprecated: bool = False,
    input_schema: JsonSchema | None = None,
) -> Tool:
    return Tool(
        name=name,
        original_name=name,
        description=description,
        input_schema=input_schema or {"type": "object"},
        annotations=Annotations(read_only=method == "GET"),
        source=source,
        target=HttpOperation(
            server=source, method=method, path=path, base_url=None, operation_id=name
        ),
        deprecated=deprecated,
    )


CATALOG = [
    tool("issues_create", "POST", "/repos/{owner}/{repo}/issues", "Create an issue"),
    tool("issues_list-for-repo", "GET", "/repos/{owner}/{repo}/issues", "List repository issues"),
    tool("issues_update", "PATCH", "/repos/{owner}/{repo}/issues/{n}", "Update an issue"),
    tool("issues_create-comment", "POST", "/repos/{o}/{r}/issues/{n}/comments", "Create a comment"),
    tool("repos_delete", "DELETE", "/repos/{owner}/{repo}", "Delete a repository"),
    tool("repos_get", "GET", "/repos/{owner}/{repo}", "Get a repository"),
    tool("listCoreV1NamespacedPod", "GET", "/api/v1/namespaces/{ns}/pods",
         "list objects of kind Pod", source="k8s"),
    tool("deleteCoreV1NamespacedPod", "DELETE", "/api/v1/namespaces/{ns}/pods/{name}",
         "delete a Pod", source="k8s"),
    tool("readCoreV1NamespacedPodLog", "GET", "/api/v1/namespaces/{ns}/pods/{name}/log",
         "read log of the specified Pod", source="k8s"),
    tool("PostCustomers", "POST", "/v1/customers", "<p>Creates a new customer object.</p>",
         source="stripe"),
    tool("GetCustomersCustomer", "GET", "/v1/customers/{customer}",
         "<p>Retrieves a Customer object.</p>", source="stripe"),
    tool("teams_list-legacy", "GET", "/teams", "List teams (Legacy)", deprecated=True),
    tool("teams_list", "GET", "/orgs/{org}/teams", "List teams"),
]  # fmt: skip


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex(CATALOG)


def names(
    index: SearchIndex, query: str, limit: int = 3, visible: list[int] | None = None
) -> list[str]:
    return [index.tools[hit.position].name for hit in index.search(query, limit, visible)]


def test_words_split_identifiers_and_text_and_drop_markup_and_stop_words() -> None:
    assert words("readAppsV1NamespacedDeploymentStatus") == [
        "read", "apps", "namespaced", "deployment", "status",
    ]  # fmt: skip
    assert words("CSIDriver get-readme") == ["csi", "driver", "get", "readme"]
    assert words("<p>Creates a <code>Customer</code> &amp; more.</p>") == [
        "creates", "customer", "more",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("close issue #17 in octocat/hello-world", ["close", "issue"]),
        ('post "deploy finished" to the releases channel', ["post", "releases", "channel"]),
        ("cordon node-3 now", ["cordon", "node", "now"]),
        ("move PROJ-12 to Done", ["move", "issue", "done"]),
        ("set up a webhook for jane@example.com", ["create", "webhook"]),
        ("look up customer cus_123, v2.0.0, 10Gi", ["look", "up", "customer"]),
    ],
)
def test_the_values_a_task_names_are_not_words_of_the_task(task: str, expected: list[str]) -> None:
    assert task_words(task) == expected


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (
            "close issue #17 in octocat/hello-world",
            TaskQuery(("close", "issue"), ("repository",), "update", "close"),
        ),
        (
            'post "deploy finished" to #releases',
            TaskQuery(("post",), ("text", "channel"), "create", "post"),
        ),
        (
            "leave a comment on issue 42 saying I'm working on it",
            TaskQuery(("leave", "comment", "issue"), ("text",), "create", "leave"),
        ),
        (
            "create a product called Premium Plan",
            TaskQuery(("create", "product"), (), "create", "create"),
        ),
        ("commit docs/index.md for bob@example.com", TaskQuery(("commit",), ("file", "email"))),
        ("have a message posted at 9am", TaskQuery(("message", "posted"), ("schedule",))),
        ("ask @alice to review", TaskQuery(("ask", "review"), ("user",), "create", "ask")),
        (
            "turn off the protection of main",
            TaskQuery(("disable", "protection", "main"), (), "update", "disable"),
        ),
        (
            "take back my vote on PROJ-31",
            TaskQuery(("remove", "vote", "issue"), (), "delete", "remove"),
        ),
        (
            "get rid of the stale branch",
            TaskQuery(("remove", "stale", "branch"), (), "delete", "remove"),
        ),
        ("wipe all pods", TaskQuery(("wipe", "all", "pods"), (), "delete", "wipe")),
        (
            "am I allowed to delete pods in prod?",
            TaskQuery(("check", "permission", "delete", "pods", "prod"), (), "read", "check"),
        ),
        (
            "does the ci bot have permission to push",
            TaskQuery(("check", "permission", "push"), (), "read", "check"),
        ),
    ],
)  # fmt: skip
def test_a_task_is_read_as_its_words_what_its_values_stand_for_and_its_action(
    task: str, expected: TaskQuery
) -> None:
    assert read_task(task) == expected


@pytest.mark.parametrize(
    ("task", "intent"),
    [
        ("which nodes are in the cluster", "read"),
        ("open a bug report", "create"),
        ("rename the channel", "update"),
        ("tear down the deployment", "delete"),
        ("the pods, please", None),
        ("updated the docs", "update"),
        ("attaching a file", "create"),
        ("notified of changes", None),
    ],
)
def test_a_tasks_action_is_its_first_cue_word(task: str, intent: str | None) -> None:
    assert task_intent(task) == intent


@pytest.mark.parametrize(
    ("method", "path", "description", "intent"),
    [
        ("POST", "/v1/coupons/{coupon}", "<p>Updates the metadata of a coupon.</p>", "update"),
        ("POST", "/v1/coupons", "<p>Creates a coupon.</p>", "create"),
        ("POST", "/v1/coupons/{coupon}", "<p>A coupon.</p>", "update"),
        ("POST", "/admin.users.remove", "Remove a user from a workspace.", "delete"),
        ("GET", "/things", "Things", "read"),
        ("PUT", "/user/starred/{owner}/{repo}", "Star a repository", "update"),
    ],
)
def test_a_tools_action_is_its_summarys_verb_else_its_names_else_its_methods(
    method: Method, path: str, description: str, intent: str
) -> None:
    assert tool_intent(tool("thing", method, path, description)) == intent


def test_a_tool_is_found_by_its_names_summary_description_body_path_tags_and_action() -> None:
    job = {"type": "object", "description": "Job represents the configuration of a single job."}
    schema: JsonSchema = {"properties": {"body": {"$ref": "#/$defs/Job"}}, "$defs": {"Job": job}}
    found = tool(
        "createJob",
        "POST",
        "/apis/batch/v1/namespaces/{namespace}/jobs",
        "create a Job\n\nCreates it.",
        source="kube",
        input_schema=schema,
    )
    assert document(found) == [
        "create", "job", "create", "job",  # the name, twice
        "create", "job", "create", "job",  # the summary, twice
        "creates",  # the rest of the description
        "kube",  # the source (no tags)
        "job", "represents", "configuration", "single", "job",  # the body's schema
        "apis", "batch", "namespaces", "jobs", "jobs",  # the path, its last literal again
        "create", "add", "new",  # the words of its action
    ]  # fmt: skip


def test_the_best_matches_come_first_by_action_resource_and_source(index: SearchIndex) -> None:
    assert names(index, "open a new issue in my repository") == [
        "issues_create", "issues_create-comment", "issues_list-for-repo",
    ]  # fmt: skip
    assert names(index, "show me the pods in the staging namespace", 2) == [
        "listCoreV1NamespacedPod", "readCoreV1NamespacedPodLog",
    ]  # fmt: skip
    assert names(index, "remove the crashed pod worker-1", 1) == ["deleteCoreV1NamespacedPod"]
    assert names(index, "add a customer with the email jane@example.com", 1) == ["PostCustomers"]
    assert names(index, "get the logs of pod api-7f9", 1) == ["readCoreV1NamespacedPodLog"]


def test_a_task_that_names_many_things_prefers_the_list_and_one_thing_the_item() -> None:
    index = SearchIndex([
        tool("readNode", "GET", "/api/v1/nodes/{name}", "read the specified Node"),
        tool("listNode", "GET", "/api/v1/nodes", "list objects of kind Node"),
        tool("createNode", "POST", "/api/v1/nodes", "create a Node"),
    ])  # fmt: skip
    assert names(index, "which nodes are in the cluster", 2) == ["listNode", "readNode"]
    assert names(index, "show me node worker-1", 2) == ["readNode", "listNode"]


def test_the_action_is_read_from_the_summary_so_a_post_that_updates_is_no_create() -> None:
    index = SearchIndex([
        tool("PostCouponsCoupon", "POST", "/v1/coupons/{coupon}",
             "Updates the metadata of a coupon."),
        tool("PostCoupons", "POST", "/v1/coupons", "You can create coupons."),
    ])  # fmt: skip
    assert names(index, "make a coupon that takes 25% off", 2) == [
        "PostCoupons", "PostCouponsCoupon",
    ]  # fmt: skip
    assert names(index, "change the metadata of coupon SUMMER", 2) == [
        "PostCouponsCoupon", "PostCoupons",
    ]  # fmt: skip


def test_the_tasks_verb_counts_less_where_it_is_a_noun() -> None:
    index = SearchIndex([
        tool("uploadReportFile", "POST", "/reports/{id}/files",
             "Upload a file to a report\n\nThe file is kept with the report."),
        tool("fileReport", "POST", "/reports", "File a report"),
        tool("getReport", "GET", "/reports/{id}", "Get a report"),
    ])  # fmt: skip
    assert names(index, "file a report about the outage") == [
        "fileReport", "uploadReportFile", "getReport",
    ]  # fmt: skip


def test_two_words_near_each_other_find_their_compound_and_values_the_word_they_imply() -> None:
    index = SearchIndex([
        tool("getChangeLogs", "GET", "/issue/{key}/changelog", "Get changelogs"),
        tool("addWorklog", "POST", "/issue/{key}/worklog", "Add worklog"),
        tool("repos_get-readme", "GET", "/repos/{o}/{r}/readme", "Get a repository README"),
        tool("repos_get-content", "GET", "/repos/{o}/{r}/contents/{path}",
             "Get repository content\n\nGets the contents of a file or directory."),
    ])  # fmt: skip
    assert names(index, "log 2 hours of work on PROJ-5", 1) == ["addWorklog"]
    assert names(index, "get docs/index.md from octocat/hello", 2) == [
        "repos_get-content", "repos_get-readme",
    ]  # fmt: skip


def test_a_word_that_undoes_removes_and_initials_find_the_name_that_says_them() -> None:
    index = SearchIndex([
        tool("pins_add", "POST", "/pins.add", "Pins an item to a channel."),
        tool("pins_remove", "POST", "/pins.remove", "Un-pins an item from a channel."),
        tool("chat_scheduleMessage", "POST", "/chat.scheduleMessage",
             "Schedules a message to be sent to a channel."),
        tool("chat_deleteScheduledMessage", "POST", "/chat.deleteScheduledMessage",
             "Deletes a pending scheduled message from the queue."),
        tool("dnd_endDnd", "POST", "/dnd.endDnd",
             "Ends the current user's Do Not Disturb session immediately."),
        tool("users_setPresence", "POST", "/users.setPresence", "Manually sets user presence."),
    ])  # fmt: skip
    assert names(index, "unpin the welcome message in #general", 6) == [
        "pins_remove", "chat_deleteScheduledMessage", "pins_add", "chat_scheduleMessage",
    ]  # fmt: skip
    assert names(index, "unschedule the announcement for Friday", 6) == [
        "chat_deleteScheduledMessage", "pins_remove", "chat_scheduleMessage",
    ]  # fmt: skip
    assert names(index, "turn off do not disturb", 6) == ["dnd_endDnd"]
    assert names(index, "set me as away", 6) == ["users_setPresence"]
    assert initials('turn off do not disturb "in the sun"') == (
        "tod", "odn", "dnd", "todn", "odnd",
    )  # fmt: skip


def test_a_word_written_together_finds_the_name_that_has_its_parts_apart() -> None:
    """`statefulset` is the path's word of both tools below, and a StatefulSet's name has it
    in two words: the task's word covers them too."""
    index = SearchIndex([
        tool("readAppsV1NamespacedStatefulSet", "GET", "/apis/apps/v1/ns/{ns}/statefulsets/{n}",
             "read the specified StatefulSet"),
        tool("readAppsV1NamespacedReplicaSet", "GET", "/apis/apps/v1/ns/{ns}/replicasets/{n}",
             "read the specified ReplicaSet"),
    ])  # fmt: skip
    assert names(index, "how many replicas of the postgres statefulset are ready?") == [
        "readAppsV1NamespacedStatefulSet", "readAppsV1NamespacedReplicaSet",
    ]  # fmt: skip


def test_a_question_of_permission_finds_the_permissions_not_the_action() -> None:
    index = SearchIndex([
        tool("getMyPermissions", "GET", "/rest/api/3/mypermissions", "Get my permissions"),
        tool("deleteIssue", "DELETE", "/rest/api/3/issue/{key}", "Delete issue"),
        tool("deleteComment", "DELETE", "/rest/api/3/comment/{id}", "Delete comment"),
        tool("deleteProject", "DELETE", "/rest/api/3/project/{key}", "Delete project"),
    ])  # fmt: skip
    assert names(index, "am I allowed to delete issues in HR?", 5) == [
        "getMyPermissions", "deleteIssue", "deleteComment", "deleteProject",
    ]  # fmt: skip
    assert names(index, "delete issue HR-1", 5) == ["deleteIssue", "deleteComment", "deleteProject"]


def test_a_deprecated_tool_ranks_below_the_current_one(index: SearchIndex) -> None:
    assert names(index, "list teams", 2) == ["teams_list", "teams_list-legacy"]


def test_a_tool_whose_summary_says_it_is_deprecated_ranks_below_too() -> None:
    tools = [
        tool("watchPodList", "GET", "/watch/pods", "watch a list of Pod. deprecated: use list"),
        tool("listPod", "GET", "/pods", "list objects of kind Pod"),
    ]
    assert names(SearchIndex(tools), "list the pods", 2) == ["listPod", "watchPodList"]


def test_only_the_positions_a_caller_may_see_are_ranked_and_none_is_lost(
    index: SearchIndex,
) -> None:
    hidden = CATALOG.index(next(t for t in CATALOG if t.name == "issues_create"))
    visible = [i for i in range(len(CATALOG)) if i != hidden]
    found = names(index, "open a new issue in my repository", 3, visible)
    assert found == ["issues_create-comment", "issues_list-for-repo", "PostCustomers"]


def test_tools_that_share_no_word_with_the_task_are_not_returned(index: SearchIndex) -> None:
    assert names(index, "xylophone zebra", 5) == []
    assert names(index, "", 5) == []
    assert names(index, "issue", 0) == []


def test_an_empty_catalog_finds_nothing() -> None:
    assert SearchIndex([]).search("anything", 5) == []


def test_indexes_are_built_once_per_key_and_visible_sets_kept_per_caller() -> None:
    indexes = SearchIndexes()
    built: list[str] = []

    def tools() -> list[Tool]:
        built.append("built")
        return CATALOG[:3]

    first = indexes.index("github", tools)
    assert indexes.index("github", tools) is first
    assert built == ["built"]
    computed: list[int] = []

    def positions() -> list[int]:
        computed.append(1)
        return [0, 2]

    assert indexes.visible(("github", "alice"), positions) == (0, 2)
    assert indexes.visible(("github", "alice"), positions) == (0, 2)
    assert computed == [1]


@pytest.mark.corpus
def test_recall_over_five_large_documents_keeps_its_measured_floor() -> None:
    """bench/search.py's measurement over its six task files, as a regression floor: 0.831
    over the whole catalog and 0.871 within each task's document when this was written (the
    target of 0.9 over the whole catalog is not met: bench/README.md says so)."""
    import importlib.util
    import sys
    from pathlib import Path

    from tests.corpus import CORPUS

    path = Path(__file__).resolve().parents[1] / "bench" / "search.py"
    spec = importlib.util.spec_from_file_location("bench_search", path)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    index = SearchIndex(bench.load_tools(CORPUS))
    tasks = [task for file in bench.TASKS.values() for task in bench.load_tasks(file)]
    recall = bench.measure(index, tasks)
    assert (recall.tasks, recall.catalog_recall >= 0.82, recall.document_recall >= 0.86) == (
        427,
        True,
        True,
    )


def test_a_tools_own_name_in_the_task_finds_it_first(index: SearchIndex) -> None:
    """Words of a task never would: `repos_get` and `readCoreV1NamespacedPodLog` read as values.
    The document's own name (an operationId such as `chat.postMessage`) finds it too, and so
    does the method an RPC-style path names (Slack's `/chat.postMessage`, `chat_postMessage`)."""
    tools = [
        *CATALOG,
        replace(CATALOG[0], name="chat_postMessage", original_name="chat.postMessage"),
        tool("users_list", "GET", "/users.list", "Lists all users in a Slack team."),
        tool("files_remote_add", "POST", "/api/files.remote.add", "Adds a file."),
    ]
    both = SearchIndex(tools)
    assert (
        names(index, "repos_get", 5),
        names(index, "call READCOREV1NAMESPACEDPODLOG, please", 1),
        names(index, "delete a repository, or repos_get?", 2),
        names(both, "`chat.postMessage`", 1),
        names(both, "USERS.LIST", 1),
        names(both, "call files.remote.add", 1),
        names(index, "repos_get", 5, visible=[0, 1]),
    ) == (
        ["repos_get"],
        ["readCoreV1NamespacedPodLog"],
        ["repos_get", "repos_delete"],
        ["chat_postMessage"],
        ["users_list"],
        ["files_remote_add"],
        [],
    )
