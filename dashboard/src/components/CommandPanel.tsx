"use client";
// STOP, release (a reason is required), override as hold-to-drive (short commands repeated while
// the control is held: let go, and the robot stops when the last one runs out), and path plans.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, errorText } from "@/api/client";
import { DeviceStop } from "./DeviceStop";

const HOLD_S = 0.6; // each override lasts this long; re-sent every HOLD_S / 2 while held
const DRIVE: { label: string; linear: number; angular: number }[] = [
  { label: "Forward", linear: 1, angular: 0 },
  { label: "Left", linear: 0, angular: 1 },
  { label: "Right", linear: 0, angular: -1 },
  { label: "Back", linear: -1, angular: 0 },
];

interface Props {
  device: { id: string; name: string };
  path: { x: number; y: number }[];
  onClearPath: () => void;
}

export function CommandPanel({ device, path, onClearPath }: Props) {
  const [message, setMessage] = useState("");
  const [speed, setSpeed] = useState(0.5);
  const [held, setHeld] = useState<string | null>(null);
  const timer = useRef<ReturnType<typeof setInterval> | null>(null);
  const path_ = { path: { device_id: device.id } };

  const release = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = event.currentTarget;
    const reason = String(new FormData(form).get("reason") ?? "").trim();
    if (!reason) {
      setMessage("A reason is required to release a stop.");
      return;
    }
    const { data, error } = await api.POST("/api/v1/devices/{device_id}/release", { params: path_, body: { reason } });
    setMessage(data ? `Release ${data.status}` : `Release failed: ${errorText(error)}`);
    if (data) form.reset();
  };

  const drive = (d: (typeof DRIVE)[number]) => {
    const send = () =>
      void api
        .POST("/api/v1/devices/{device_id}/override", {
          params: path_,
          body: { linear: d.linear * speed, angular: d.angular * speed, duration_s: HOLD_S },
        })
        .then(({ data, error }) => setMessage(data ? `Override ${d.label.toLowerCase()}: ${data.status}` : `Override failed: ${errorText(error)}`));
    stopDriving();
    setHeld(d.label);
    send();
    timer.current = setInterval(send, (HOLD_S * 1000) / 2);
  };
  const stopDriving = () => {
    if (timer.current) clearInterval(timer.current);
    timer.current = null;
    setHeld(null);
  };
  useEffect(() => stopDriving, []);

  const sendPath = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const { data, error } = await api.POST("/api/v1/devices/{device_id}/path", {
      params: path_,
      body: { waypoints: path, speed: Number(form.get("speed")), timeout_s: Number(form.get("timeout")) },
    });
    setMessage(data ? `Path ${data.status}` : `Path failed: ${errorText(error)}`);
  };

  return (
    <section className="card" aria-labelledby="cmd-title">
      <h2 id="cmd-title">Commands</h2>
      <div className="row">
        <DeviceStop device={device} />
      </div>
      <form className="row" onSubmit={(e) => void release(e)}>
        <label>
          Release reason <input name="reason" required maxLength={1024} placeholder="aisle cleared, checked on site" />
        </label>
        <button type="submit">Release stop</button>
      </form>
      <fieldset className="row">
        <legend>Override: hold a button to drive (speed {speed.toFixed(1)})</legend>
        <input aria-label="Override speed" type="range" min={0.1} max={2} step={0.1} value={speed} onChange={(e) => setSpeed(Number(e.target.value))} />
        {DRIVE.map((d) => (
          <button
            key={d.label}
            type="button"
            aria-pressed={held === d.label}
            onPointerDown={() => drive(d)}
            onPointerUp={stopDriving}
            onPointerLeave={stopDriving}
            onKeyDown={(e) => {
              if ((e.key === " " || e.key === "Enter") && !e.repeat) drive(d);
            }}
            onKeyUp={stopDriving}
            onBlur={stopDriving}
          >
            {d.label}
          </button>
        ))}
      </fieldset>
      <form className="row" onSubmit={(e) => void sendPath(e)}>
        <span>Path: {path.length} waypoint(s) (click the map to add)</span>
        <label>
          Speed <input name="speed" type="number" min={0.1} max={10} step={0.1} defaultValue={0.5} />
        </label>
        <label>
          Timeout s <input name="timeout" type="number" min={1} max={3600} defaultValue={120} />
        </label>
        <button type="submit" disabled={path.length === 0}>
          Send path
        </button>
        <button type="button" onClick={onClearPath} disabled={path.length === 0}>
          Clear
        </button>
      </form>
      <p role="status" aria-live="polite">
        {message}
      </p>
    </section>
  );
}
