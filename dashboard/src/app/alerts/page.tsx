"use client";
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { api, can, errorText, type Schemas } from "@/api/client";
import { useAuth } from "@/lib/auth";
import { useLive } from "@/lib/live";

type Alert = Schemas["AlertOut"];
type Rule = Schemas["RuleOut"];
type Filters = { state: string; severity: string; device: string; site: string };

const TEMPLATES: Record<string, object> = {
  zone_intrusion: { type: "zone_intrusion", zones: ["danger"], classes: ["person"] },
  metric_threshold: { type: "metric_threshold", metric: "robot.battery.percent", op: "<", threshold: 15, clear_at: 25 },
  device_offline: { type: "device_offline", after_s: 60 },
  event: { type: "event", events: ["robot_fault"], resolve_on: [] },
  buffer_dropping: { type: "buffer_dropping", classes: ["detections", "telemetry"] },
};

export default function AlertsPage() {
  const { principal } = useAuth();
  const live = useLive();
  const [filters, setFilters] = useState<Filters>({ state: "", severity: "", device: "", site: "" });
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [message, setMessage] = useState("");

  const load = useCallback(() => {
    const query = {
      state: (filters.state || undefined) as Alert["state"] | undefined,
      severity: (filters.severity || undefined) as Alert["severity"] | undefined,
      device: filters.device || undefined,
      site: filters.site || undefined,
      limit: 200,
    };
    void api.GET("/api/v1/alerts", { params: { query } }).then(({ data, error }) => {
      setAlerts(data?.items ?? []);
      if (error) setMessage(`Could not load alerts: ${errorText(error)}`);
    });
  }, [filters]);
  useEffect(load, [load, live.alerts]);

  const act = async (alert: Alert, verb: "acknowledge" | "resolve") => {
    const params = { path: { alert_id: alert.id } };
    const { error } =
      verb === "acknowledge"
        ? await api.POST("/api/v1/alerts/{alert_id}/acknowledge", { params })
        : await api.POST("/api/v1/alerts/{alert_id}/resolve", { params });
    setMessage(error ? `${verb} failed: ${errorText(error)}` : `Alert ${alert.id}: ${verb}d`);
    load();
  };
  const set = (key: keyof Filters) => (value: string) => setFilters((f) => ({ ...f, [key]: value }));

  return (
    <div className="page">
      <h1>Alerts</h1>
      <section className="card" aria-labelledby="alerts-title">
        <h2 id="alerts-title">Live alerts</h2>
        <div className="row filters">
          <Select label="State" value={filters.state} onChange={set("state")} options={["active", "acknowledged", "resolved"]} />
          <Select label="Severity" value={filters.severity} onChange={set("severity")} options={["info", "warning", "critical"]} />
          <label>
            Device <input value={filters.device} onChange={(e) => set("device")(e.target.value)} />
          </label>
          <label>
            Site <input value={filters.site} onChange={(e) => set("site")(e.target.value)} />
          </label>
        </div>
        <p role="status">{message}</p>
        <table className="live-values">
          <thead>
            <tr>
              <th>Raised</th>
              <th>Severity</th>
              <th>State</th>
              <th>Device</th>
              <th>Rule</th>
              <th>Message</th>
              <th>Count</th>
              {can(principal, "operator") && <th>Actions</th>}
            </tr>
          </thead>
          <tbody>
            {alerts.map((a) => (
              <tr key={a.id} className={`sev-${a.severity}`}>
                <td>{new Date(a.raised_at).toLocaleString()}</td>
                <td>{a.severity}</td>
                <td>
                  {a.state}
                  {a.acknowledged_by ? ` by ${a.acknowledged_by}` : ""}
                </td>
                <td>{a.device}</td>
                <td>{a.rule}</td>
                <td>{a.message}</td>
                <td>{a.count}</td>
                {can(principal, "operator") && (
                  <td className="control">
                    {a.state === "active" && (
                      <button type="button" onClick={() => void act(a, "acknowledge")}>
                        Acknowledge
                      </button>
                    )}
                    {a.state !== "resolved" && (
                      <button type="button" onClick={() => void act(a, "resolve")}>
                        Resolve
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {alerts.length === 0 && <p className="muted">No alerts match.</p>}
      </section>
      <Rules admin={can(principal, "admin")} />
    </div>
  );
}

function Select(props: { label: string; value: string; onChange: (v: string) => void; options: string[] }) {
  return (
    <label>
      {props.label}{" "}
      <select value={props.value} onChange={(e) => props.onChange(e.target.value)}>
        <option value="">any</option>
        {props.options.map((o) => (
          <option key={o}>{o}</option>
        ))}
      </select>
    </label>
  );
}

function Rules({ admin }: { admin: boolean }) {
  const [rules, setRules] = useState<Rule[]>([]);
  const [kind, setKind] = useState("zone_intrusion");
  const [condition, setCondition] = useState(JSON.stringify(TEMPLATES.zone_intrusion, null, 1));
  const [message, setMessage] = useState("");
  const load = useCallback(() => void api.GET("/api/v1/alert-rules").then(({ data }) => setRules(data?.items ?? [])), []);
  useEffect(load, [load]);

  const create = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    let parsed: Schemas["RuleIn"]["condition"];
    try {
      parsed = JSON.parse(condition) as Schemas["RuleIn"]["condition"];
    } catch {
      setMessage("The condition is not valid JSON.");
      return;
    }
    const { error } = await api.POST("/api/v1/alert-rules", {
      body: {
        name: String(form.get("name")),
        description: String(form.get("description") ?? ""),
        severity: form.get("severity") as Rule["severity"],
        enabled: true,
        condition: parsed,
      },
    });
    setMessage(error ? `Not saved: ${errorText(error)}` : "Rule saved.");
    load();
  };
  const toggle = async (rule: Rule) => {
    const { error } = await api.PATCH("/api/v1/alert-rules/{rule_id}", { params: { path: { rule_id: rule.id } }, body: { enabled: !rule.enabled } });
    setMessage(error ? errorText(error) : `Rule ${rule.name} ${rule.enabled ? "disabled" : "enabled"}.`);
    load();
  };
  const remove = async (rule: Rule) => {
    if (!window.confirm(`Delete rule ${rule.name}?`)) return;
    const { error } = await api.DELETE("/api/v1/alert-rules/{rule_id}", { params: { path: { rule_id: rule.id } } });
    setMessage(error ? errorText(error) : `Rule ${rule.name} deleted.`);
    load();
  };

  return (
    <section className="card" aria-labelledby="rules-title">
      <h2 id="rules-title">Alert rules</h2>
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Type</th>
            <th>Severity</th>
            <th>Condition</th>
            <th>Enabled</th>
            {admin && <th>Actions</th>}
          </tr>
        </thead>
        <tbody>
          {rules.map((r) => (
            <tr key={r.id}>
              <td>{r.name}</td>
              <td>{r.type}</td>
              <td>{r.severity}</td>
              <td>
                <code>{JSON.stringify(r.condition)}</code>
              </td>
              <td>{r.enabled ? "yes" : "no"}</td>
              {admin && (
                <td>
                  <button type="button" onClick={() => void toggle(r)}>
                    {r.enabled ? "Disable" : "Enable"}
                  </button>
                  <button type="button" onClick={() => void remove(r)}>
                    Delete
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {admin && (
        <form className="rule-editor" onSubmit={(e) => void create(e)}>
          <h3>New rule</h3>
          <label>
            Name <input name="name" required maxLength={128} />
          </label>
          <label>
            Severity{" "}
            <select name="severity" defaultValue="warning">
              <option>info</option>
              <option>warning</option>
              <option>critical</option>
            </select>
          </label>
          <label>
            Type{" "}
            <select
              value={kind}
              onChange={(e) => {
                setKind(e.target.value);
                setCondition(JSON.stringify(TEMPLATES[e.target.value], null, 1));
              }}
            >
              {Object.keys(TEMPLATES).map((k) => (
                <option key={k}>{k}</option>
              ))}
            </select>
          </label>
          <label>
            Description <input name="description" maxLength={1000} />
          </label>
          <label className="wide">
            Condition (JSON)
            <textarea rows={5} value={condition} onChange={(e) => setCondition(e.target.value)} />
          </label>
          <button type="submit">Save rule</button>
        </form>
      )}
      <p role="status">{message}</p>
    </section>
  );
}
