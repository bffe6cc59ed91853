"use client";
// The site drawn by hand in SVG (no tile server): a metre grid, the site's floor plan when it
// has one (zones, shelves, docks and chargers, set by an admin), robots at their odometry pose
// with a heading wedge, and what their cameras see as markers. Detections carry image boxes,
// not world positions, so a marker is placed ahead of the robot along the box's bearing
// (assumed 60° field of view, nearer for taller boxes): an approximation, drawn dashed.
import { useId, type MouseEvent } from "react";
import type { SiteLayout } from "@/api/client";
import type { Frame, Pose } from "@/lib/live";

export interface MapRobot {
  id: string;
  name: string;
  pose: Pose;
  stopped: boolean;
  online: boolean;
  frame?: Frame;
}

interface Props {
  robots: MapRobot[];
  /** The site's floor plan (null or absent: the bare grid). */
  layout?: SiteLayout | null;
  path?: { x: number; y: number }[];
  focus?: string;
  onPick?: (x: number, y: number) => void;
  height?: number;
}

const W = 640;
const FOV = Math.PI / 3;
const MARK: Record<string, string> = { person: "#e07000", forklift: "#7b3fbf" };

function bounds(points: { x: number; y: number }[], height: number) {
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const minX = Math.min(0, ...xs) - 2;
  const minY = Math.min(0, ...ys) - 2;
  const spanX = Math.max(10, ...xs) + 2 - minX;
  const spanY = Math.max(10, ...ys) + 2 - minY;
  const scale = Math.min(W / spanX, height / spanY);
  return { minX, minY, scale, maxX: minX + W / scale, maxY: minY + height / scale };
}

/** Every point the floor plan covers: its extent from (0, 0), its zones and its spots. */
function layoutPoints(layout: SiteLayout | null | undefined): { x: number; y: number }[] {
  if (!layout) return [];
  return [
    { x: 0, y: 0 },
    { x: layout.width_m, y: layout.height_m },
    ...(layout.zones ?? []).flatMap((z) => z.polygon.map(([x, y]) => ({ x, y }))),
    ...(layout.spots ?? []),
  ];
}

/** Where a zone's name goes, in metres: centred, near the top of a tall zone (so it stays
 * clear of the docks and chargers inside it), mid-height in a low one (a shelf). */
function labelAt(polygon: [number, number][], scale: number): { x: number; y: number } {
  const xs = polygon.map(([x]) => x);
  const ys = polygon.map(([, y]) => y);
  const [top, bottom] = [Math.max(...ys), Math.min(...ys)];
  const x = (Math.min(...xs) + Math.max(...xs)) / 2;
  return { x, y: (top - bottom) * scale > 40 ? top - 8 / scale : (top + bottom) / 2 };
}

function markers(robot: MapRobot) {
  const frame = robot.frame;
  if (!frame) return [];
  const inZone = new Map<number, string>();
  for (const [zone, members] of Object.entries(frame.zones ?? {})) for (const i of members) inZone.set(i, zone);
  return frame.objects.map((o, i) => {
    const cx = (o.box.x1 + o.box.x2) / 2;
    const bearing = robot.pose.theta - (cx - 0.5) * FOV;
    const dist = 1 + 4 * (1 - Math.min(1, o.box.y2 - o.box.y1));
    return {
      key: `${robot.id}-${i}`,
      cls: o.cls,
      zone: inZone.get(i),
      x: robot.pose.x + dist * Math.cos(bearing),
      y: robot.pose.y + dist * Math.sin(bearing),
    };
  });
}

export function SiteMap({ robots, layout, path = [], focus, onPick, height = 420 }: Props) {
  // An SVG pattern's id is document-wide: one per map, in characters url(#…) takes as they are.
  const hatch = `hatch-${useId().replace(/[^A-Za-z0-9_-]/g, "")}`;
  const zones = layout?.zones ?? [];
  const spots = layout?.spots ?? [];
  const all = [...robots.map((r) => r.pose), ...path, ...layoutPoints(layout)];
  const { minX, minY, maxX, maxY, scale } = bounds(all, height);
  const sx = (x: number) => (x - minX) * scale;
  const sy = (y: number) => height - (y - minY) * scale; // y up, like the robot's frame
  const grid = Math.max(1, Math.round((maxY - minY) / 10));
  const lines = [];
  for (let g = Math.ceil(minX / grid) * grid; g <= maxX; g += grid) lines.push(<line key={`x${g}`} x1={sx(g)} x2={sx(g)} y1={0} y2={height} />);
  for (let g = Math.ceil(minY / grid) * grid; g <= maxY; g += grid) lines.push(<line key={`y${g}`} y1={sy(g)} y2={sy(g)} x1={0} x2={W} />);

  const pick = (event: MouseEvent<SVGSVGElement>) => {
    if (!onPick) return;
    const rect = event.currentTarget.getBoundingClientRect();
    const px = ((event.clientX - rect.left) / rect.width) * W;
    const py = ((event.clientY - rect.top) / rect.height) * height;
    onPick(Math.round((px / scale + minX) * 100) / 100, Math.round(((height - py) / scale + minY) * 100) / 100);
  };

  return (
    <svg
      className={`sitemap${onPick ? " picking" : ""}`}
      viewBox={`0 0 ${W} ${height}`}
      role="img"
      aria-label={`Site map: ${robots.length} robot(s), ${zones.length} zone(s), grid ${grid} m`}
      onClick={pick}
    >
      <defs>
        <pattern id={hatch} width={8} height={8} patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
          <rect width={8} height={8} className="hatch-ground" />
          <line x1={0} y1={0} x2={0} y2={8} className="hatch-line" />
        </pattern>
      </defs>
      <rect width={W} height={height} className="floor" />
      <g className="grid">{lines}</g>
      {layout && (
        <g className="layout">
          <rect className="site-outline" x={sx(0)} y={sy(layout.height_m)} width={layout.width_m * scale} height={layout.height_m * scale} />
          {zones.map((z, i) => {
            const at = labelAt(z.polygon, scale);
            return (
              <g key={`z${i}`} className={`zone ${z.kind}`}>
                <title>{`${z.name} (${z.kind.replace("_", " ")})`}</title>
                <polygon
                  points={z.polygon.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" ")}
                  style={z.kind === "keep_out" ? { fill: `url(#${hatch})` } : undefined}
                />
                <text x={sx(at.x)} y={sy(at.y)} textAnchor="middle" dominantBaseline="central">
                  {z.name}
                </text>
              </g>
            );
          })}
          {spots.map((p, i) => (
            <g key={`s${i}`} className={`spot ${p.kind}`} transform={`translate(${sx(p.x)},${sy(p.y)})`}>
              <title>{`${p.name} (${p.kind})`}</title>
              <rect x={-4} y={-4} width={8} height={8} />
              <text x={7} y={0} dominantBaseline="central">
                {p.name}
              </text>
            </g>
          ))}
        </g>
      )}
      {path.length > 0 && (
        <polyline className="plan" points={path.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" ")} />
      )}
      {path.map((p, i) => (
        <circle key={`wp${i}`} cx={sx(p.x)} cy={sy(p.y)} r={4} className="waypoint" />
      ))}
      {robots.flatMap(markers).map((m) => (
        <g key={m.key} transform={`translate(${sx(m.x)},${sy(m.y)})`} className="marker">
          {m.cls === "forklift" ? (
            <rect x={-6} y={-6} width={12} height={12} fill={MARK.forklift} />
          ) : (
            <circle r={6} fill={MARK[m.cls] ?? "#777"} />
          )}
          <text x={8} y={4} className={m.zone ? "inzone" : undefined}>
            {m.cls}
            {m.zone ? ` in ${m.zone}` : ""}
          </text>
        </g>
      ))}
      {robots.map((r) => {
        const deg = (-r.pose.theta * 180) / Math.PI;
        const cls = ["robot", r.stopped ? "stopped" : "", r.online ? "" : "offline", r.id === focus ? "focus" : ""].join(" ");
        return (
          <g key={r.id} className={cls} transform={`translate(${sx(r.pose.x)},${sy(r.pose.y)})`}>
            <title>{`${r.name}: (${r.pose.x.toFixed(1)}, ${r.pose.y.toFixed(1)}) m, heading ${((r.pose.theta * 180) / Math.PI).toFixed(0)}°`}</title>
            <g transform={`rotate(${deg})`}>
              <circle r={9} />
              <path d="M 4 -6 L 18 0 L 4 6 Z" className="heading" />
            </g>
            <text x={12} y={-10}>
              {r.name}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
