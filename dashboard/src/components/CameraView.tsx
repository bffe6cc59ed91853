"use client";
// Latest detections drawn on a canvas. The hub stores and relays detection results, not camera
// images, so the boxes are drawn over a placeholder frame and the view says so.
import { useEffect, useRef } from "react";
import type { Frame } from "@/lib/live";

const COLOURS: Record<string, string> = { person: "#e07000", forklift: "#7b3fbf" };

export function CameraView({ frame }: { frame: Frame | null }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const ctx = canvas.current?.getContext("2d");
    if (!ctx || !canvas.current) return;
    const { width, height } = canvas.current;
    ctx.fillStyle = "#1f2937";
    ctx.fillRect(0, 0, width, height);
    ctx.fillStyle = "#9ca3af";
    ctx.font = "12px sans-serif";
    ctx.fillText("no camera image from the hub: detection boxes only", 8, height - 8);
    const inZone = new Set(Object.values(frame?.zones ?? {}).flat());
    frame?.objects.forEach((o, i) => {
      const x = o.box.x1 * width;
      const y = o.box.y1 * height;
      ctx.strokeStyle = inZone.has(i) ? "#ef4444" : (COLOURS[o.cls] ?? "#22c55e");
      ctx.lineWidth = 2;
      ctx.strokeRect(x, y, (o.box.x2 - o.box.x1) * width, (o.box.y2 - o.box.y1) * height);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(`${o.cls} ${(o.conf * 100).toFixed(0)}%`, x + 2, Math.max(12, y - 3));
    });
  }, [frame]);
  const zones = Object.entries(frame?.zones ?? {}).filter(([, m]) => m.length > 0);
  return (
    <figure className="camera">
      <canvas ref={canvas} width={480} height={270} aria-label="Latest detections (boxes on a placeholder frame)" />
      <figcaption className="small muted">
        {frame
          ? `Frame ${frame.frame_id}${frame.camera ? ` (${frame.camera})` : ""} at ${new Date(frame.ts).toLocaleTimeString()}: ${frame.objects.length} object(s)${
              zones.length ? `; in zones: ${zones.map(([z, m]) => `${z} (${m.length})`).join(", ")}` : ""
            }`
          : "No detections yet."}
      </figcaption>
    </figure>
  );
}
