// Версии (DP-4 "versions"): every save is kept; an old one can be looked at (read-only) or
// restored, which stores a re-checked copy as the newest version (history is never changed).
import { Alert, Badge, Button, Drawer, Group, Loader, Table, Text } from "@mantine/core";
import { modals } from "@mantine/modals";
import { notifications } from "@mantine/notifications";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { ApiError, http, type Schemas } from "../api/client";
import { useText } from "../crud/text";

type VersionList = Schemas["VersionList"];
export type DialplanRead = Schemas["DialplanRead"];

interface Props {
  opened: boolean;
  onClose: () => void;
  clientId: number;
  dialplanId: number;
  currentVersion: number;
  canRollback: boolean;
  dirty: boolean;
  onOpenVersion: (n: number) => void;
  onRolledBack: (plan: DialplanRead) => void;
}

export function VersionsDrawer({ opened, onClose, clientId, dialplanId, currentVersion, canRollback, dirty, onOpenVersion, onRolledBack }: Props) {
  const text = useText();
  const { i18n } = useTranslation();
  const [error, setError] = useState<string | null>(null);
  const list = useQuery({
    queryKey: ["dialplan-versions", clientId, dialplanId, currentVersion],
    queryFn: () => http<VersionList>("GET", `/clients/${clientId}/dialplans/${dialplanId}/versions`),
    enabled: opened,
  });
  const rollback = async (version: number) => {
    setError(null);
    try {
      const body = { version, base_version: currentVersion, comment: "" };
      const plan = await http<DialplanRead>("POST", `/clients/${clientId}/dialplans/${dialplanId}/rollback`, { body });
      notifications.show({ color: "green", message: `${text(["Восстановлена версия", "Restored version"])} ${version} → ${plan.version}` });
      onRolledBack(plan);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const confirm = (version: number) =>
    modals.openConfirmModal({
      title: `${text(["Восстановить версию", "Restore version"])} ${version}?`,
      children: (
        <Text size="sm">
          {text(["Её копия станет новой текущей версией; история сохранится.", "A copy of it becomes the new current version; history is kept."])}
          {dirty ? ` ${text(["Несохранённые изменения будут потеряны.", "Unsaved changes will be lost."])}` : ""}
        </Text>
      ),
      labels: { confirm: text(["Восстановить", "Restore"]), cancel: text(["Отмена", "Cancel"]) },
      onConfirm: () => void rollback(version),
    });
  return (
    <Drawer opened={opened} onClose={onClose} position="right" size="lg" title={text(["Версии диалплана", "Dialplan versions"])}>
      {list.isPending && <Loader />}
      {list.error && <Alert color="red">{list.error.message}</Alert>}
      {error && <Alert color="red">{error}</Alert>}
      {list.data && (
        <Table withTableBorder data-testid="versions">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>№</Table.Th>
              <Table.Th>{text(["Сохранена", "Saved"])}</Table.Th>
              <Table.Th>{text(["Шагов", "Steps"])}</Table.Th>
              <Table.Th>{text(["Комментарий", "Comment"])}</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {list.data.items.map((v) => (
              <Table.Tr key={v.number}>
                <Table.Td>
                  {v.number} {v.current && <Badge size="xs">{text(["текущая", "current"])}</Badge>}
                </Table.Td>
                <Table.Td>{new Date(v.created_ms).toLocaleString(i18n.language === "en" ? "en-GB" : "ru-RU")}</Table.Td>
                <Table.Td>{v.step_count}</Table.Td>
                <Table.Td>{v.comment}</Table.Td>
                <Table.Td>
                  <Group gap={4} wrap="nowrap">
                    <Button size="compact-xs" variant="light" onClick={() => onOpenVersion(v.number)}>
                      {text(["Открыть", "Open"])}
                    </Button>
                    {canRollback && !v.current && (
                      <Button size="compact-xs" variant="light" color="orange" onClick={() => confirm(v.number)}>
                        {text(["Восстановить", "Restore"])}
                      </Button>
                    )}
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Drawer>
  );
}
