"""The Textual application behind ``modelmux tui`` (imported only when Textual is installed).

The event stream is read in a worker thread (``AdminClient`` blocks) and each snapshot is
handed to the app's thread; the views are redrawn from it and nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Sparkline, Static, TabbedContent, TabPane

from modelmux.cli.admin_client import AdminClient, AdminError
from modelmux.cli.tui_views import Recent, deployment_rows, overview_lines, spend_rows

COLUMNS = ("deployment", "breaker", "in flight", "ttft ms", "rpm", "tpm")
SPEND_EVERY = 10
"""While the spend view shows, it reloads every this many snapshots (seconds)."""


class GatewayApp(App[None]):
    """Overview, providers and errors of one gateway, live."""

    TITLE = "ModelMux"
    CSS = """
    #figures { height: auto; padding: 0 1; }
    #rates-label { margin: 1 1 0 1; color: $text-muted; }
    #rates { height: 4; margin: 0 1; }
    #status { height: 1; padding: 0 1; color: $warning; }
    #top-teams, #top-keys { height: 1fr; }
    """
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("1", "show('overview')", "Overview"),
        Binding("2", "show('providers')", "Providers"),
        Binding("3", "show('errors')", "Errors"),
        Binding("4", "show('spend')", "Spend"),
        Binding("b", "toggle_breaker", "Breaker"),
        Binding("r", "reconnect", "Reconnect"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, client: AdminClient) -> None:
        super().__init__()
        self.client = client
        self.recent = Recent()
        self.snapshot: dict[str, Any] = {}
        self.snapshots_seen = 0
        self.spend_loaded = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="overview"):
            with TabPane("Overview", id="overview"):
                yield Static(id="figures")
                yield Static("requests/s, last minute", id="rates-label")
                yield Sparkline([], id="rates")
            with TabPane("Providers", id="providers"):
                yield DataTable(id="deployments", cursor_type="row", zebra_stripes=True)
            with TabPane("Errors", id="errors"):
                yield DataTable(id="error-log", cursor_type="row")
            with TabPane("Spend", id="spend"):
                yield DataTable(id="top-teams", cursor_type="row")
                yield DataTable(id="top-keys", cursor_type="row")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.client.url} ({self.client.role})"
        self.query_one("#deployments", DataTable).add_columns(*COLUMNS)
        self.query_one("#error-log", DataTable).add_columns("time", "error", "count")
        for table, label in (("#top-teams", "team"), ("#top-keys", "key")):
            self.query_one(table, DataTable).add_columns(label, "requests", "cost USD")
        self.watch_events()

    @work(thread=True, exclusive=True, group="events")
    def watch_events(self) -> None:
        try:
            for snap in self.client.snapshots():
                self.call_from_thread(self.show_snapshot, snap)
            self.call_from_thread(self.say, "event stream ended; press r to reconnect")
        except AdminError as exc:
            self.call_from_thread(self.say, f"{exc}; press r to reconnect")

    def say(self, text: str) -> None:
        self.query_one("#status", Static).update(Text(text))

    def show_snapshot(self, snap: dict[str, Any]) -> None:
        self.snapshot = snap
        self.snapshots_seen += 1
        self.recent.add(snap)
        self.query_one("#figures", Static).update(Text("\n".join(overview_lines(snap))))
        self.query_one("#rates", Sparkline).data = list(self.recent.rates)
        table = self.query_one("#deployments", DataTable)
        row = table.cursor_row
        table.clear()
        for values in deployment_rows(snap):
            table.add_row(*(Text(v) for v in values), key=values[0])
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        if self.query_one(TabbedContent).active == "spend" and self.snapshots_seen % SPEND_EVERY == 1:
            self.load_spend()
        log = self.query_one("#error-log", DataTable)
        log.clear()
        for stamp, kind, count in self.recent.errors:
            log.add_row(Text(stamp), Text(kind), Text(str(count)))

    def action_show(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "providers":
            self.query_one("#deployments", DataTable).focus()
        if tab == "spend":
            self.load_spend()

    @work(thread=True, exclusive=True, group="spend")
    def load_spend(self) -> None:
        try:
            found = {group: self.client.get(f"/admin/usage?group_by={group}")["data"]
                     for group in ("team", "key")}
        except AdminError as exc:
            self.call_from_thread(self.say, str(exc))
            return
        self.call_from_thread(self.show_spend, found)

    def show_spend(self, found: dict[str, list[dict[str, Any]]]) -> None:
        self.spend_loaded += 1
        for group, table_id in (("team", "#top-teams"), ("key", "#top-keys")):
            table = self.query_one(table_id, DataTable)
            table.clear()
            for values in spend_rows(found[group]):
                table.add_row(*(Text(v) for v in values))

    def selected_deployment(self) -> str | None:
        table = self.query_one("#deployments", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def action_toggle_breaker(self) -> None:
        ident = self.selected_deployment()
        if ident is None:
            return
        if self.client.role != "admin":
            self.say("only an admin key can change breakers")
            return
        breaker = (self.snapshot.get("deployments") or {}).get(ident, {}).get("breaker", {})
        self.change_breaker(ident, "closed" if breaker.get("state") == "open" else "open")

    @work(thread=True, group="controls")
    def change_breaker(self, ident: str, state: str) -> None:
        try:
            self.client.post("/admin/breaker", {"deployment": ident, "state": state})
            self.call_from_thread(self.say, f"breaker of {ident}: {state}")
        except AdminError as exc:
            self.call_from_thread(self.say, str(exc))

    def action_reconnect(self) -> None:
        self.client.close()
        self.say("")
        self.watch_events()

    def on_unmount(self) -> None:
        self.client.close()
