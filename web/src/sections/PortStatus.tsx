// PRT-1: whether a port's phone is registered and reachable, from GET …/ports/{id}/status
// (the engine's registrar). Without an engine in the process the API says so and so do we.
import { Badge, Group, Loader, Stack, Table, Text, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { http, type Schemas } from "../api/client";
import { useText } from "../crud/text";
import type { Row, TabProps } from "../crud/types";
import { PortSecret } from "./extras";

type Status = Schemas["PortStatusRead"];
const REFRESH_MS = 30_000;

function usePortStatus(clientId: number | null, id: unknown) {
  return useQuery({
    queryKey: ["port-status", clientId, id],
    queryFn: () => http<Status>("GET", `/clients/${clientId}/ports/${id}/status`),
    refetchInterval: REFRESH_MS,
  });
}

function StatusBadge({ status }: { status: Status }) {
  const text = useText();
  if (!status.engine_running) return <Badge color="gray" variant="light">{text(["движок не запущен", "engine not running"])}</Badge>;
  if (!status.registered) return <Badge color="red" variant="light">{text(["не зарегистрирован", "not registered"])}</Badge>;
  if (!status.available) return <Badge color="orange" variant="light">{text(["не отвечает", "not answering"])}</Badge>;
  return <Badge color="green" variant="light">{`${text(["зарегистрирован", "registered"])} (${status.contacts.length})`}</Badge>;
}

/** The list's "Регистрация" cell: one small request per shown port, refreshed every 30 s. */
export function PortStatusCell({ row }: { row: Row }) {
  const status = usePortStatus(Number(row.client_id), row.id);
  if (status.isPending) return <Loader size="xs" />;
  if (!status.data) return <Text size="xs" c="dimmed">—</Text>;
  return <StatusBadge status={status.data} />;
}

/** Below a port's form: the SIP password on request, then its registration and contacts. */
export function PortExtras(props: TabProps) {
  const text = useText();
  const { i18n } = useTranslation();
  const status = usePortStatus(props.clientId, props.row.id);
  return (
    <Stack mt="md" gap="xs">
      <PortSecret {...props} />
      <Group gap="xs">
        <Title order={5}>{text(["Регистрация", "Registration"])}</Title>
        {status.data && <StatusBadge status={status.data} />}
      </Group>
      {status.data && status.data.contacts.length > 0 && (
        <Table withTableBorder fz="sm" aria-label={text(["Контакты регистрации", "Registered contacts"])}>
          <Table.Thead>
            <Table.Tr>
              {[["Контакт", "Contact"], ["Транспорт", "Transport"], ["Адрес", "Source"], ["Телефон", "User agent"], ["Действует до", "Expires"], ["Отвечает", "Answers"]].map((h) => (
                <Table.Th key={h[0]}>{text(h as [string, string])}</Table.Th>
              ))}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {status.data.contacts.map((c) => (
              <Table.Tr key={c.uri}>
                <Table.Td>{c.uri}</Table.Td>
                <Table.Td>{c.transport}</Table.Td>
                <Table.Td>{c.source}</Table.Td>
                <Table.Td>{c.user_agent}</Table.Td>
                <Table.Td>{new Date(c.expires_at_ms).toLocaleTimeString(i18n.language === "en" ? "en-GB" : "ru-RU")}</Table.Td>
                <Table.Td>{c.available ? text(["да", "yes"]) : text(["нет", "no"])}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}
