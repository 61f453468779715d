// The personal cabinet's frame: header (client, language, user) and the side menu of the
// sections the user's rights allow (ADM-1). Collapses to a burger menu on narrow screens.
import { AppShell, Burger, Group, Menu, NavLink, ScrollArea, Select, Text, Title, UnstyledButton } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { IconChevronDown, IconHome, IconLogout } from "@tabler/icons-react";
import type { ReactNode } from "react";
import { useTranslation } from "react-i18next";
import { Link, useLocation, useNavigate } from "react-router-dom";
import { useMe, useAuth } from "../auth";
import { useItem, useList } from "../crud/resource";
import { useText } from "../crud/text";
import { CLIENT_MENU, PROVIDER_MENU, visibleMenu, type MenuItem } from "../menu";
import { can, isProvider } from "../rights";
import { LanguageSwitch } from "./LanguageSwitch";

function MenuTree({ items, base, close }: { items: MenuItem[]; base: string; close: () => void }) {
  const text = useText();
  const { pathname } = useLocation();
  return (
    <>
      {items.map((item) =>
        item.children ? (
          <NavLink key={item.key} label={text(item.label)} defaultOpened childrenOffset={16}>
            <MenuTree items={item.children} base={base} close={close} />
          </NavLink>
        ) : (
          <NavLink
            key={item.key}
            component={Link}
            to={`${base}/${item.key}`}
            label={text(item.label)}
            active={pathname === `${base}/${item.key}` || pathname.startsWith(`${base}/${item.key}/`)}
            onClick={close}
          />
        ),
      )}
    </>
  );
}

function ClientPicker({ clientId }: { clientId: number | null }) {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const list = useList("/clients", { limit: 500, sort: "name" });
  const data = (list.data?.items ?? []).map((c) => ({ value: String(c.id), label: String(c.name) }));
  return (
    <Select
      aria-label={t("menu.client")}
      placeholder={t("menu.chooseClient")}
      searchable
      size="xs"
      w={220}
      data={data}
      value={clientId === null ? null : String(clientId)}
      onChange={(v) => v && navigate(`/clients/${v}/home`)}
    />
  );
}

function ClientHeading({ clientId }: { clientId: number }) {
  const { t } = useTranslation();
  const item = useItem("/clients", String(clientId));
  return (
    <NavLink
      component={Link}
      to={`/clients/${clientId}/home`}
      mt="md"
      label={`${t("menu.client")}: ${item.data ? String(item.data.name) : `#${clientId}`}`}
      fw={600}
    />
  );
}

function UserMenu() {
  const me = useMe();
  const { logout } = useAuth();
  const { t } = useTranslation();
  return (
    <Menu position="bottom-end">
      <Menu.Target>
        <UnstyledButton aria-label={me.login}>
          <Group gap={4}>
            <div>
              <Text size="sm" fw={500}>
                {me.full_name || me.login}
              </Text>
              <Text size="xs" c="dimmed" data-testid="user-level">
                {t(`levels.${me.level}`)}
              </Text>
            </div>
            <IconChevronDown size={14} />
          </Group>
        </UnstyledButton>
      </Menu.Target>
      <Menu.Dropdown>
        <Menu.Item leftSection={<IconLogout size={14} />} onClick={() => void logout()}>
          {t("actions.logout")}
        </Menu.Item>
      </Menu.Dropdown>
    </Menu>
  );
}

export function Shell({ clientId, children }: { clientId: number | null; children: ReactNode }) {
  const me = useMe();
  const { t } = useTranslation();
  const [opened, { toggle, close }] = useDisclosure();
  const provider = isProvider(me);
  const providerMenu = provider ? visibleMenu(me, PROVIDER_MENU, "global") : [];
  const client = clientId ?? me.client_id;
  const clientMenu = client !== null ? visibleMenu(me, CLIENT_MENU, "client") : [];
  const pickClients = provider && can(me, "clients", "read");
  return (
    // Below Mantine's md (62em, 992 px: tablets in portrait) the menu folds into the burger.
    <AppShell header={{ height: 60 }} navbar={{ width: 270, breakpoint: "md", collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="md" size="sm" aria-label={t("app.menu")} aria-expanded={opened} />
            <Title order={4} visibleFrom="xs">
              cloudpbx
            </Title>
            {pickClients && <ClientPicker clientId={clientId} />}
          </Group>
          <Group wrap="nowrap">
            <LanguageSwitch />
            <UserMenu />
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label={t("app.cabinet")}>
        <ScrollArea>
          <nav data-testid="side-menu">
            <NavLink component={Link} to="/" label={t("menu.home")} leftSection={<IconHome size={16} />} onClick={close} />
            {providerMenu.length > 0 && (
              <NavLink label={t("menu.administration")} defaultOpened childrenOffset={16}>
                <MenuTree items={providerMenu} base="" close={close} />
              </NavLink>
            )}
            {clientMenu.length > 0 && (
              <>
                {provider && client !== null && <ClientHeading clientId={client} />}
                <MenuTree items={clientMenu} base={`/clients/${client}`} close={close} />
              </>
            )}
          </nav>
        </ScrollArea>
      </AppShell.Navbar>
      <AppShell.Main>{children}</AppShell.Main>
    </AppShell>
  );
}
