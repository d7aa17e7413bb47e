"""`detcli dashboard`: live view of runs (loss, LR, memory, throughput, metrics, events) from the run history."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist
from textual_plotext import PlotextPlot

from detcli.tui.data import DashboardData, RunView, age, fmt_duration, smooth
from engine.runs import RunStore

METRICS = ("map50", "map50_95", "f1", "precision", "recall", "iou")
STATUS_STYLE = {"running": "cyan", "finished": "green", "failed": "red", "interrupted": "yellow"}


class CompareScreen(ModalScreen):
    """Val metric per epoch of every run, overlaid."""

    BINDINGS = [Binding("escape,c,q", "app.pop_screen", "back")]

    def __init__(self, store: RunStore, metric: str):
        super().__init__()
        self.store, self.metric = store, metric

    def compose(self) -> ComposeResult:
        yield PlotextPlot(id="compare")

    def on_mount(self) -> None:
        plt = self.query_one(PlotextPlot).plt
        plt.title(f"{self.metric} per epoch, all runs (esc: back)")
        for run in self.store.list_runs()[:8]:
            eps = [e for e in self.store.epochs(run["id"]) if e[self.metric] is not None]
            if eps:
                plt.plot([e["epoch"] + 1 for e in eps], [e[self.metric] for e in eps], label=run["name"])


class DashboardApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "detcli dashboard"
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("n", "next_run", "next run"),
        Binding("p", "prev_run", "prev run"),
        Binding("l", "toggle_log", "log scale"),
        Binding("m", "next_metric", "metric"),
        Binding("c", "compare", "compare"),
        Binding("r", "refresh_now", "refresh"),
    ]

    def __init__(
        self,
        runs_dir: Path,
        run: str | None = None,
        interval: float = 1.5,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__()
        self.runs_dir, self.interval, self.clock = Path(runs_dir), interval, clock
        self.store = RunStore.open(self.runs_dir)
        self.data = DashboardData(self.store, clock)
        self.wanted = run
        self.run_id: int | None = None
        self.log_scale, self.metric_idx = False, 0
        self.run_ids: list[int] = []
        self._epoch_key: tuple | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            with Vertical(id="main"):
                yield Static("", id="header")
                yield Static("", id="empty")
                with Vertical(id="charts"):
                    yield PlotextPlot(id="loss")
                    yield PlotextPlot(id="lr")
                    yield PlotextPlot(id="mem")
                    yield PlotextPlot(id="metric")
                with Horizontal(id="bottom"):
                    yield DataTable(id="metrics", zebra_stripes=True)
                    yield Static("", id="events")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_columns("run", "status", "epoch", "best", "age")
        self.query_one("#metrics", DataTable).add_columns(
            "ep", "loss", "mAP50", "mAP50-95", "P", "R", "F1", "IoU"
        )
        self.refresh_runs()
        self.set_interval(self.interval, self.poll)

    def on_resize(self) -> None:
        self.set_class(self.size.width < 100, "narrow")

    # ------------------------------------------------------------------ data

    def refresh_runs(self) -> None:
        runs = self.data.runs()
        table = self.query_one("#runs", DataTable)
        now = self.clock()
        keep = self.run_id
        table.clear()
        self.run_ids = [r["id"] for r in runs]
        for r in runs:
            ep = "-" if r["last_epoch"] is None else f"{r['last_epoch'] + 1}/{r['epochs']}"
            best = "-" if r["best_metric"] is None else f"{r['best_metric']:.3f}"
            status = f"[{STATUS_STYLE.get(r['status'], 'white')}]{r['status']}[/]"
            table.add_row(r["name"], status, ep, best, age(r["started_at"], now), key=str(r["id"]))
        empty = self.query_one("#empty", Static)
        if not runs:
            empty.update(
                "No runs in this run history yet.\n\nStart one in another terminal (or over SSH):\n\n"
                "    detcli train --preset demo\n\nThis dashboard picks it up within a second or two.\n"
                f"(run history: {self.runs_dir})"
            )
            empty.display = True
            self.query_one("#charts").display = False
            self.query_one("#bottom").display = False
            return
        empty.display = False
        self.query_one("#charts").display = True
        self.query_one("#bottom").display = True
        if keep is None:
            wanted = (
                next((r for r in runs if self.wanted in (r["name"], str(r["id"]))), None)
                if self.wanted
                else None
            )
            keep = (wanted or runs[0])["id"]
        if keep in self.run_ids:
            table.move_cursor(row=self.run_ids.index(keep))
        self.select(keep)

    def select(self, run_id: int) -> None:
        if run_id != self.run_id:
            self.run_id = run_id
            self.data.forget(run_id)
        self.poll()

    def poll(self) -> None:
        names = {r["id"] for r in self.data.runs()}
        if set(self.run_ids) != names:
            self.refresh_runs()
            return
        if self.run_id is None or not self.data.changed(self.run_id):
            return
        self.render_run(self.data.view(self.run_id))
        self.refresh_run_row()

    def refresh_run_row(self) -> None:
        r = self.store.get_run(self.run_id)
        table = self.query_one("#runs", DataTable)
        n = len(self.store.epochs(self.run_id))
        try:
            table.update_cell(
                str(self.run_id),
                table.ordered_columns[1].key,
                f"[{STATUS_STYLE.get(r['status'], 'white')}]{r['status']}[/]",
            )
            table.update_cell(
                str(self.run_id), table.ordered_columns[2].key, f"{n}/{r['epochs']}" if n else "-"
            )
        except (CellDoesNotExist, RowDoesNotExist):  # the row went away in between: rebuild the list
            self.refresh_runs()

    # ------------------------------------------------------------------ rendering

    def render_run(self, v: RunView) -> None:
        r = v.run
        last = v.series[-1] if v.series else {}
        now = self.clock()
        end = r["ended_at"] or (r["heartbeat_at"] if r["status"] != "running" else now)
        elapsed = (end or now) - (r["started_at"] or now)
        epoch = (last.get("epoch", -1) + 1) if last else 0
        status = f"[{STATUS_STYLE.get(r['status'], 'white')}]{r['status']}[/]"
        eta = fmt_duration(last.get("eta_s")) if r["status"] == "running" else "-"
        best = "-" if r["best_epoch"] is None else f"{r['best_metric']:.4f} @ epoch {r['best_epoch'] + 1}"
        self.query_one("#header", Static).update(
            f"[b]{r['name']}[/b]  {status}  preset {r['preset']}  model {r['model']}  device {r['device']}  "
            f"host {r['host']}\n"
            f"epoch {epoch}/{r['epochs']}  step {r.get('last_step') or 0}  "
            f"{(last.get('img_s') or 0):.1f} img/s  elapsed {fmt_duration(elapsed)}  ETA {eta}  best {best}"
        )
        steps = [s["step"] for s in v.series]
        self._plot(
            "loss",
            "loss (smoothed)",
            steps,
            {"total": smooth([s["loss_mean"] or 0 for s in v.series])}
            | {
                k.replace("loss_", ""): smooth([(s["losses"] or {}).get(k, 0) for s in v.series])
                for k in (v.series[-1]["losses"] or {})
                if v.series
            }
            if v.series
            else {},
        )
        groups = (v.series[-1]["lr"] or {}) if v.series else {}
        lr_series: dict[str, list[float]] = {}
        for g in groups:  # groups sharing one LR curve (decay / no-decay twins) are drawn once
            ys = [(s["lr"] or {}).get(g, 0) for s in v.series]
            if ys not in lr_series.values():
                lr_series[g] = ys
        self._plot("lr", "learning rate", steps, lr_series, log=False)
        # on CUDA the trainer records peak VRAM (max_memory_allocated); on a CPU, the process's peak RSS
        mem = "VRAM MB" if str(r["device"] or "").startswith("cuda") else "mem MB"
        self._plot(
            "mem",
            f"{'peak VRAM' if mem == 'VRAM MB' else 'memory'} MB / images/s",
            steps,
            {
                mem: [s["mem_mb"] or 0 for s in v.series],
                "img/s x100": [(s["img_s"] or 0) * 100 for s in v.series],
            },
            log=False,
        )
        # epoch rows change once per epoch, steps every poll: rebuild the epoch views only when they changed
        epoch_key = (
            r["id"],
            self.metric_idx,
            tuple((e["epoch"], e["map50"], e["is_best"]) for e in v.epochs),
        )
        if epoch_key != self._epoch_key:
            self._epoch_key = epoch_key
            self._render_epochs(v.epochs)
        colours = {"warning": "yellow", "error": "red"}
        lines = [
            f"[{colours.get(e['level'], 'white')}]{time.strftime('%H:%M:%S', time.localtime(e['t']))} "
            f"{e['message']}[/]"
            for e in v.events[-10:]
        ]
        self.query_one("#events", Static).update("\n".join(lines) or "no events")

    def _render_epochs(self, epochs: list[dict]) -> None:
        metric = METRICS[self.metric_idx]
        eps = [e for e in epochs if e[metric] is not None]
        self._plot(
            "metric",
            f"val {metric} (m: next metric)",
            [e["epoch"] + 1 for e in eps],
            {metric: [e[metric] for e in eps]},
            log=False,
        )
        t = self.query_one("#metrics", DataTable)
        t.clear()
        for e in epochs[-40:]:
            cells = [
                str(e["epoch"] + 1),
                f"{e['train_loss'] or 0:.3f}",
                *[
                    f"{e[m]:.3f}" if e[m] is not None else "-"
                    for m in ("map50", "map50_95", "precision", "recall", "f1", "iou")
                ],
            ]
            t.add_row(*[f"[b green]{c}[/]" for c in cells] if e["is_best"] else cells)
        if epochs:
            t.move_cursor(row=len(t.rows) - 1)

    def _plot(
        self, widget: str, title: str, x: list, series: dict[str, list[float]], log: bool | None = None
    ) -> None:
        plot = self.query_one(f"#{widget}", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        use_log = self.log_scale if log is None else log
        plt.title(title + (" [log]" if use_log else ""))
        for name, ys in series.items():
            if not ys:
                continue
            ys = [math.log10(max(y, 1e-9)) for y in ys] if use_log else ys
            plt.plot(x[: len(ys)], ys, label=name)
        plot.refresh()

    # ------------------------------------------------------------------ actions

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "runs" and event.row_key is not None and event.row_key.value:
            self.select(int(event.row_key.value))

    def _move(self, step: int) -> None:
        if self.run_ids and self.run_id in self.run_ids:
            i = (self.run_ids.index(self.run_id) + step) % len(self.run_ids)
            self.query_one("#runs", DataTable).move_cursor(row=i)
            self.select(self.run_ids[i])

    def action_next_run(self) -> None:
        self._move(1)

    def action_prev_run(self) -> None:
        self._move(-1)

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self._redraw()

    def action_next_metric(self) -> None:
        self.metric_idx = (self.metric_idx + 1) % len(METRICS)
        self._redraw()

    def action_refresh_now(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        if self.run_id is not None:
            self.data.forget(self.run_id)
            self.poll()

    def action_compare(self) -> None:
        self.push_screen(CompareScreen(self.store, METRICS[self.metric_idx]))
