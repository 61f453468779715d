// Delete with confirmation; an object still in use offers "delete and clear references"
// (`?cascade=true`, docs/api.md "Deleting used objects").
import { List, Stack, Text } from "@mantine/core";
import { modals } from "@mantine/modals";
import { notifications } from "@mantine/notifications";
import { useCallback } from "react";
import { useTranslation } from "react-i18next";
import { ApiError, http } from "../api/client";
import { usageText, type Usage } from "../api/errorText";
import { useInvalidate } from "./resource";

/** Who still uses the object (a 409 `in_use` answer's details), one line each. */
function Usages({ err, russian }: { err: ApiError; russian: boolean }) {
  const items = (err.details as Usage[]).map((u) => usageText(u, russian));
  return (
    <List size="sm" data-testid="usages">
      {items.map((item, i) => (
        <List.Item key={i}>{item}</List.Item>
      ))}
    </List>
  );
}

export function useDelete(path: string, onDone?: () => void) {
  const { t, i18n } = useTranslation();
  const invalidate = useInvalidate();

  const run = useCallback(
    async (id: unknown, cascade: boolean) => {
      try {
        await http("DELETE", `${path}/${id}`, { query: cascade ? { cascade: true } : undefined });
        notifications.show({ message: t("common.deleted"), color: "green" });
        await invalidate(path);
        onDone?.();
      } catch (err) {
        return err;
      }
      return null;
    },
    [path, t, invalidate, onDone],
  );

  return useCallback(
    (id: unknown, name: string) => {
      modals.openConfirmModal({
        title: t("confirm.deleteTitle"),
        children: <Text size="sm">{t("confirm.deleteText", { name })}</Text>,
        labels: { confirm: t("actions.delete"), cancel: t("actions.cancel") },
        confirmProps: { color: "red" },
        onConfirm: async () => {
          const err = await run(id, false);
          if (err instanceof ApiError && err.status === 409 && err.code === "in_use") {
            modals.openConfirmModal({
              title: t("confirm.deleteTitle"),
              children: (
                <Stack gap="xs">
                  <Text size="sm">{t("confirm.inUse")}</Text>
                  {err.details.length > 0 ? <Usages err={err} russian={i18n.language !== "en"} /> : <Text size="sm">{err.message}</Text>}
                  <Text size="sm" c="dimmed">{t("confirm.inUseHint")}</Text>
                </Stack>
              ),
              labels: { confirm: t("actions.deleteAnyway"), cancel: t("actions.cancel") },
              confirmProps: { color: "red" },
              onConfirm: async () => {
                const again = await run(id, true);
                if (again) notifyError(again, t("common.error"));
              },
            });
          } else if (err) {
            notifyError(err, t("common.error"));
          }
        },
      });
    },
    [run, t, i18n.language],
  );
}

export function notifyError(err: unknown, title: string): void {
  const message = err instanceof Error ? err.message : String(err);
  notifications.show({ title, message, color: "red" });
}
