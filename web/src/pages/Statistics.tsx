// Статистика (ST-1): calls and their cost per day and per direction for a period, drawn as
// plain SVG bars from GET /statistics. Costs are what rating recorded on each call; where no
// tariff is assigned the page says so. Nothing is estimated or invented.
import { Alert, Center, Group, Loader, SimpleGrid, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { http, type Schemas } from "../api/client";
import { useText } from "../crud/text";
import { duration } from "./Calls";

type Stats = Schemas["StatisticsOut"];
type Account = Schemas["BillingAccountRead"];

const DIRECTIONS: Record<string, readonly [string, string]> = {
  incoming: ["Входящие", "Incoming"],
  internal: ["Внутренние", "Internal"],
  local: ["Местные", "Local"],
  long_distance: ["Междугородные (МГ)", "Long distance"],
  international: ["Международные (МН)", "International"],
  toll_free: ["8 800", "Toll-free"],
  emergency: ["Экстренные", "Emergency"],
};

function isoDay(offsetDays: number): string {
  return new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

interface Bar {
  label: string;
  value: number;
  /** A part of the bar drawn darker (answered calls). */
  part?: number;
}

/** A vertical bar chart in SVG: one bar per row, the value on hover (title) and on top. */
function BarChart({ bars, title, format, testId, tick = (l) => l.slice(8) }: { bars: Bar[]; title: string; format: (v: number) => string; testId: string; tick?: (label: string) => string }) {
  const height = 180;
  // Bars between 14 and 56 px wide: a month fits a tablet, one direction is not a wall.
  const w = Math.min(56, Math.max(14, 640 / Math.max(bars.length, 1)));
  const width = Math.max(200, bars.length * w);
  const max = Math.max(...bars.map((b) => b.value), 0);
  const scale = (v: number) => (max > 0 ? (v / max) * (height - 20) : 0);
  return (
    <Stack gap={4}>
      <Text fw={500}>{title}</Text>
      <div style={{ overflowX: "auto" }}>
        <svg width={width} height={height + 40} role="img" aria-label={title} data-testid={testId}>
          {bars.map((b, i) => (
            <g key={b.label} transform={`translate(${i * w},0)`}>
              <title>{`${b.label}: ${format(b.value)}`}</title>
              <rect x={2} y={height - scale(b.value)} width={w - 4} height={scale(b.value)} fill="var(--mantine-color-blue-3)" />
              {b.part !== undefined && <rect x={2} y={height - scale(b.part)} width={w - 4} height={scale(b.part)} fill="var(--mantine-color-blue-7)" />}
              {bars.length <= 31 && (
                <text x={w / 2} y={height + 14} fontSize={9} textAnchor="middle">
                  {tick(b.label)}
                </text>
              )}
            </g>
          ))}
          <line x1={0} y1={height} x2={width} y2={height} stroke="var(--mantine-color-gray-5)" />
          <text x={width - 2} y={10} fontSize={10} textAnchor="end" fill="var(--mantine-color-gray-7)">
            {`max ${format(max)}`}
          </text>
          {bars.length > 1 && (
            <text x={0} y={height + 32} fontSize={10}>
              {bars[0]?.label} … {bars[bars.length - 1]?.label}
            </text>
          )}
        </svg>
      </div>
    </Stack>
  );
}

function CostNote({ stats, account }: { stats: Stats; account: Account | null | undefined }) {
  const text = useText();
  if (account && account.tariff_id === null)
    return (
      <Alert color="yellow" data-testid="cost-note">
        {text([
          "Тариф клиенту не назначен: стоимость вызовов не начисляется, поэтому суммы равны нулю.",
          "No tariff is assigned to the client: calls are not rated, so the sums are zero.",
        ])}
      </Alert>
    );
  if (stats.totals.billable_s > 0 && Number(stats.totals.cost) === 0)
    return (
      <Alert color="yellow" data-testid="cost-note">
        {text(["Стоимость не записана: вызовы периода не тарифицированы (нет тарифа или ставки).", "No cost was recorded: the period's calls were not rated (no tariff or rate)."])}
      </Alert>
    );
  return (
    <Text size="sm" c="dimmed" data-testid="cost-note">
      {text(["Стоимость — как её записала тарификация каждого вызова.", "Costs are what rating recorded on each call."])}
    </Text>
  );
}

export function StatisticsPage({ clientId }: { clientId: number }) {
  const text = useText();
  const { t } = useTranslation();
  const [period, setPeriod] = useState({ from: isoDay(-29), to: isoDay(0) });
  const [query] = useDebouncedValue(period, 300);
  const stats = (group: string) => ({
    queryKey: ["statistics", clientId, group, query],
    queryFn: () => http<Stats>("GET", `/clients/${clientId}/statistics`, { query: { ...query, group } }),
    placeholderData: (prev: Stats | undefined) => prev,
  });
  const byDay = useQuery(stats("day"));
  const byDirection = useQuery(stats("direction"));
  // The tariff is the provider's business: a user who may not read it just sees the sums.
  const account = useQuery({
    queryKey: ["billing-account", clientId],
    queryFn: () => http<Account>("GET", `/clients/${clientId}/billing-account`).catch(() => null),
  });
  const currency = account.data?.currency ?? "";
  const error = byDay.error ?? byDirection.error;
  const day = byDay.data;
  const money = (v: number) => `${v.toFixed(2)} ${currency}`.trim();
  return (
    <Stack>
      <Title order={2}>{t("menu.statistics")}</Title>
      <Group align="end">
        <TextInput type="date" label={text(["С", "From"])} value={period.from} onChange={(e) => setPeriod({ ...period, from: e.currentTarget.value })} />
        <TextInput type="date" label={text(["По", "To"])} value={period.to} onChange={(e) => setPeriod({ ...period, to: e.currentTarget.value })} />
        {day && <Text size="sm" c="dimmed">{`${text(["Часовой пояс", "Time zone"])}: ${day.timezone}`}</Text>}
      </Group>
      {error && <Alert color="red">{error.message}</Alert>}
      {!day || !byDirection.data ? (
        !error && (
          <Center p="xl">
            <Loader aria-label={t("common.loading")} />
          </Center>
        )
      ) : (
        <>
          <SimpleGrid cols={{ base: 2, sm: 4 }}>
            {[
              [["Вызовов", "Calls"], String(day.totals.calls)],
              [["Отвечено", "Answered"], String(day.totals.answered)],
              [["Длительность", "Duration"], duration(day.totals.duration_ms)],
              [["Стоимость", "Cost"], `${day.totals.cost} ${currency}`.trim()],
            ].map(([label, value]) => (
              <Stack key={String(label)} gap={0}>
                <Text size="xs" c="dimmed">
                  {text(label as [string, string])}
                </Text>
                <Text fw={700} size="lg">
                  {value}
                </Text>
              </Stack>
            ))}
          </SimpleGrid>
          <CostNote stats={day} account={account.data} />
          {day.totals.calls === 0 ? (
            <Alert color="gray" data-testid="no-statistics">
              {text(["За выбранный период вызовов нет: графики строить не по чему.", "There are no calls in this period: nothing to chart."])}
            </Alert>
          ) : (
            <>
              <BarChart
                testId="chart-calls"
                title={text(["Вызовы по дням (тёмное — отвеченные)", "Calls per day (dark: answered)"])}
                bars={day.rows.map((r) => ({ label: r.label, value: r.calls, part: r.answered }))}
                format={(v) => String(v)}
              />
              <BarChart testId="chart-cost" title={text(["Стоимость по дням", "Cost per day"])} bars={day.rows.map((r) => ({ label: r.label, value: Number(r.cost) }))} format={money} />
              <Title order={4}>{text(["По направлениям", "By direction"])}</Title>
              <SimpleGrid cols={{ base: 1, md: 2 }}>
                {(["calls", "cost"] as const).map((what) => (
                  <BarChart
                    key={what}
                    testId={`chart-direction-${what}`}
                    title={what === "calls" ? text(["Вызовы по направлениям", "Calls per direction"]) : text(["Стоимость по направлениям", "Cost per direction"])}
                    bars={byDirection.data.rows.map((r) => ({ label: text(DIRECTIONS[r.key ?? ""] ?? [r.label, r.label]), value: what === "calls" ? r.calls : Number(r.cost) }))}
                    format={what === "calls" ? String : money}
                    tick={(l) => l.slice(0, 10)}
                  />
                ))}
              </SimpleGrid>
              <Table withTableBorder aria-label={text(["По направлениям", "By direction"])}>
                <Table.Thead>
                  <Table.Tr>
                    {[["Направление", "Direction"], ["Вызовов", "Calls"], ["Отвечено", "Answered"], ["Длительность", "Duration"], ["Оплачиваемые, с", "Billable, s"], ["Стоимость", "Cost"]].map((h) => (
                      <Table.Th key={h[0]}>{text(h as [string, string])}</Table.Th>
                    ))}
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {byDirection.data.rows.map((r) => (
                    <Table.Tr key={r.key ?? "none"}>
                      <Table.Td>{text(DIRECTIONS[r.key ?? ""] ?? [r.label, r.label])}</Table.Td>
                      <Table.Td>{r.calls}</Table.Td>
                      <Table.Td>{r.answered}</Table.Td>
                      <Table.Td>{duration(r.duration_ms)}</Table.Td>
                      <Table.Td>{r.billable_s}</Table.Td>
                      <Table.Td>{`${r.cost} ${currency}`.trim()}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </>
          )}
        </>
      )}
    </Stack>
  );
}
