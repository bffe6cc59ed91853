"use client";
// A small uPlot line chart; uPlot draws on a canvas and is created once per data change.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

interface Props {
  title: string;
  unit: string;
  ts: number[];
  values: number[];
  /** Decimals shown for values (default 1). */
  digits?: number;
}

export function Chart({ title, unit, ts, values, digits = 1 }: Props) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el || ts.length === 0) return;
    const plot = new uPlot(
      {
        width: Math.max(280, el.clientWidth),
        height: 160,
        legend: { show: false },
        series: [{}, { label: title, stroke: "#2563eb", width: 1.5, value: (_u, v) => (v == null ? "–" : `${v.toFixed(digits)} ${unit}`) }],
        axes: [{}, { size: 50 }],
      },
      [ts, values],
      el,
    );
    return () => plot.destroy();
  }, [title, unit, ts, values, digits]);
  const last = values[values.length - 1];
  return (
    <figure className="chart">
      <figcaption>
        {title} {last !== undefined && <strong className="live-value">{last.toFixed(digits)} {unit}</strong>}
      </figcaption>
      {ts.length === 0 ? <p className="muted small">No data in this range.</p> : <div ref={box} />}
    </figure>
  );
}
