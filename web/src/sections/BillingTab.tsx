// A client's billing account (ADM-6, the seed's "биллинговый счёт"): balance, tariff, credit
// limit and spend; the provider assigns the tariff and records payments (the only way a
// balance changes); the payments are read back from the audit log, where each one is kept.
import { Alert, Button, Group, Loader, Select, SimpleGrid, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { ApiError, http, type Page, type Schemas } from "../api/client";
import { useMe } from "../auth";
import { useList } from "../crud/resource";
import { SubForm } from "../crud/SubForm";
import { useText } from "../crud/text";
import type { TabProps } from "../crud/types";
import { can } from "../rights";

type Account = Schemas["BillingAccountRead"];
type Audit = Schemas["AuditRead"];
type FieldErrors = Record<string, string>;

function errorsOf(err: unknown): { fields: FieldErrors; general: string | null } {
  if (err instanceof ApiError && err.field) return { fields: { [err.field]: err.message }, general: null };
  return { fields: {}, general: err instanceof Error ? err.message : String(err) };
}

function Figures({ account, tariff }: { account: Account; tariff: string }) {
  const text = useText();
  const rows: [readonly [string, string], string][] = [
    [["Номер счёта", "Account number"], account.number],
    [["Баланс", "Balance"], `${account.balance} ${account.currency}`],
    [["Кредитный лимит", "Credit limit"], `${account.credit_limit} ${account.currency}`],
    [["Доступно для звонков", "Available for calls"], `${account.available} ${account.currency}`],
    [["Израсходовано всего", "Spent in total"], `${account.spent_total} ${account.currency}`],
    [["Тариф", "Tariff"], tariff],
  ];
  return (
    <Table withTableBorder data-testid="billing-figures">
      <Table.Tbody>
        {rows.map(([label, value]) => (
          <Table.Tr key={label[0]}>
            <Table.Th w="40%">{text(label)}</Table.Th>
            <Table.Td>{value}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

function AccountSettings({ path, account, onSaved }: { path: string; account: Account; onSaved: (a: Account) => void }) {
  const text = useText();
  const { t } = useTranslation();
  const tariffs = useList("/tariffs", { limit: 500, sort: "name" });
  const [values, setValues] = useState({ tariff_id: account.tariff_id, credit_limit: account.credit_limit, currency: account.currency });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [general, setGeneral] = useState<string | null>(null);
  useEffect(() => setValues({ tariff_id: account.tariff_id, credit_limit: account.credit_limit, currency: account.currency }), [account]);
  const save = async () => {
    setErrors({});
    setGeneral(null);
    try {
      onSaved(await http<Account>("PATCH", path, { body: values }));
      notifications.show({ message: t("common.saved"), color: "green" });
    } catch (err) {
      const mapped = errorsOf(err);
      setErrors(mapped.fields);
      setGeneral(mapped.general);
    }
  };
  const options = (tariffs.data?.items ?? []).map((r) => ({ value: String(r.id), label: `${r.name} (${r.currency})` }));
  return (
    <SubForm label={text(["Настройки счёта", "Account settings"])} onSubmit={() => void save()}>
      <Stack gap="xs">
        <Title order={5}>{text(["Настройки счёта", "Account settings"])}</Title>
        <SimpleGrid cols={{ base: 1, sm: 3 }}>
          <Select
            label={text(["Тариф", "Tariff"])}
            clearable
            searchable
            data={options}
            value={values.tariff_id === null ? null : String(values.tariff_id)}
            onChange={(v) => setValues({ ...values, tariff_id: v === null ? null : Number(v) })}
            error={errors.tariff_id}
          />
          <TextInput
            label={text(["Кредитный лимит", "Credit limit"])}
            inputMode="decimal"
            value={values.credit_limit}
            onChange={(e) => setValues({ ...values, credit_limit: e.currentTarget.value })}
            error={errors.credit_limit}
          />
          <TextInput
            label={text(["Валюта", "Currency"])}
            value={values.currency}
            onChange={(e) => setValues({ ...values, currency: e.currentTarget.value.toUpperCase() })}
            error={errors.currency}
          />
        </SimpleGrid>
        {general && <Alert color="red">{general}</Alert>}
        <Group>
          <Button variant="light" onClick={() => void save()}>
            {text(["Сохранить счёт", "Save the account"])}
          </Button>
        </Group>
      </Stack>
    </SubForm>
  );
}

function PaymentForm({ path, onPaid }: { path: string; onPaid: (a: Account) => void }) {
  const text = useText();
  const [amount, setAmount] = useState("");
  const [comment, setComment] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [general, setGeneral] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const pay = async () => {
    if (!amount.trim()) {
      setErrors({ amount: text("common.required") });
      return;
    }
    setBusy(true);
    setErrors({});
    setGeneral(null);
    try {
      const paid = await http<Schemas["PaymentRead"]>("POST", `${path}/payments`, { body: { amount: amount.replace(",", "."), comment } });
      notifications.show({ message: text(["Платёж зачислен: баланс {{b}}", "Payment recorded: balance {{b}}"]).replace("{{b}}", paid.balance_after), color: "green" });
      setAmount("");
      setComment("");
      onPaid(paid.account);
    } catch (err) {
      const mapped = errorsOf(err);
      setErrors(mapped.fields);
      setGeneral(mapped.general);
    } finally {
      setBusy(false);
    }
  };
  return (
    <SubForm label={text(["Платёж", "Payment"])} onSubmit={() => void pay()}>
      <Stack gap="xs">
        <Title order={5}>{text(["Платёж", "Payment"])}</Title>
        <Group align="start">
          <TextInput
            label={text(["Сумма", "Amount"])}
            description={text(["Отрицательная — корректировка", "Negative: a correction"])}
            inputMode="decimal"
            value={amount}
            onChange={(e) => setAmount(e.currentTarget.value)}
            error={errors.amount}
          />
          <TextInput label={text(["Комментарий", "Comment"])} description={text(["Необязательно", "Optional"])} value={comment} onChange={(e) => setComment(e.currentTarget.value)} error={errors.comment} />
        </Group>
        {general && <Alert color="red">{general}</Alert>}
        <Group>
          <Button onClick={() => void pay()} loading={busy}>
            {text(["Зачислить платёж", "Record the payment"])}
          </Button>
        </Group>
      </Stack>
    </SubForm>
  );
}

function Payments({ clientId }: { clientId: number }) {
  const text = useText();
  const { i18n } = useTranslation();
  const list = useQuery({
    queryKey: ["billing", clientId, "payments"],
    queryFn: () => http<Page<Audit>>("GET", `/clients/${clientId}/audit`, { query: { entity: "billing-account", action: "payment", limit: 20 } }),
  });
  const items = list.data?.items ?? [];
  return (
    <Stack gap="xs">
      <Title order={5}>{text(["Платежи", "Payments"])}</Title>
      {list.isPending && <Loader size="sm" />}
      {list.error && <Alert color="red">{list.error.message}</Alert>}
      {!list.isPending && items.length === 0 && <Text c="dimmed">{text(["Платежей не было", "No payments yet"])}</Text>}
      {items.length > 0 && (
        <Table withTableBorder aria-label={text(["Платежи", "Payments"])}>
          <Table.Thead>
            <Table.Tr>
              {[["Когда", "When"], ["Кто", "Who"], ["Сумма", "Amount"], ["Баланс после", "Balance after"], ["Комментарий", "Comment"]].map((h) => (
                <Table.Th key={h[0]}>{text(h as [string, string])}</Table.Th>
              ))}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {items.map((e) => (
              <Table.Tr key={e.id}>
                <Table.Td>{new Date(e.at_ms).toLocaleString(i18n.language === "en" ? "en-GB" : "ru-RU")}</Table.Td>
                <Table.Td>{e.user_login}</Table.Td>
                <Table.Td>{String(e.after?.amount ?? "")}</Table.Td>
                <Table.Td>{String(e.after?.balance_after ?? "")}</Table.Td>
                <Table.Td>{String(e.after?.comment ?? "")}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}

export function BillingTab({ row }: TabProps) {
  const me = useMe();
  const text = useText();
  const queryClient = useQueryClient();
  const clientId = Number(row.id);
  const path = `/clients/${clientId}/billing-account`;
  const key = ["billing", clientId];
  const account = useQuery({ queryKey: key, queryFn: () => http<Account>("GET", path) });
  const tariffs = useList("/tariffs", { limit: 500 }, can(me, "tariffs", "read"));
  const changed = (next: Account) => {
    queryClient.setQueryData(key, next);
    void queryClient.invalidateQueries({ queryKey: [...key, "payments"] });
  };
  if (account.isPending) return <Loader />;
  if (account.error) return <Alert color="red">{account.error.message}</Alert>;
  const a = account.data;
  const tariff = tariffs.data?.items.find((r) => r.id === a.tariff_id);
  const tariffName = a.tariff_id === null ? text(["Тариф не назначен", "No tariff assigned"]) : tariff ? String(tariff.name) : `#${a.tariff_id}`;
  const mayChange = can(me, "client_billing", "update");
  return (
    <Stack>
      <Figures account={a} tariff={tariffName} />
      {mayChange && <AccountSettings path={path} account={a} onSaved={changed} />}
      {mayChange && <PaymentForm path={path} onPaid={changed} />}
      {can(me, "audit", "read") && <Payments clientId={clientId} />}
    </Stack>
  );
}
