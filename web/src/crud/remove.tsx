// Delete with confirmation; an object still in use offers "delete and clear references"
// (`?cascade=true`, docs/api.md "Deleting used objects").
import { Text } from "@mantine/core";
import { modals } from "@mantine/modals";
import { notifications } from "@mantine/notifications";
import { useCallback } from "react";
import { useTranslation } from "react-i18next";
import { ApiError, http } from "../api/client";
import { useInvalidate } from "./resource";

interface UsageDetail {
  entity?: string;
  label?: string;
  id?: number;
}

function usageList(err: ApiError): string {
  return (err.details as UsageDetail[])
    .map((d) => [d.entity, d.label ?? d.id].filter(Boolean).join(" "))
    .join(", ");
}

export function useDelete(path: string, onDone?: () => void) {
  const { t } = useTranslation();
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
              children: <Text size="sm">{t("confirm.inUse", { list: usageList(err) || err.message })}</Text>,
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
    [run, t],
  );
}

export function notifyError(err: unknown, title: string): void {
  const message = err instanceof Error ? err.message : String(err);
  notifications.show({ title, message, color: "red" });
}
