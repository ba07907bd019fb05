// Package manifests generates large, realistic, compliant inputs for the
// `stateguard check` scale benchmark: per unit a headless Service and its
// StatefulSet, and a ReadWriteOnce claim with the one-replica Recreate
// Deployment that mounts it.
package manifests

import (
	"bufio"
	"fmt"
	"io"
)

const unit = `apiVersion: v1
kind: Service
metadata:
  name: db-%[1]d
  namespace: team-%[2]d
  labels: {app.kubernetes.io/name: db-%[1]d, app.kubernetes.io/part-of: shop}
spec:
  clusterIP: None
  selector: {app.kubernetes.io/name: db-%[1]d}
  ports: [{name: postgres, port: 5432, targetPort: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db-%[1]d
  namespace: team-%[2]d
  labels: {app.kubernetes.io/name: db-%[1]d, app.kubernetes.io/part-of: shop}
spec:
  serviceName: db-%[1]d
  replicas: 3
  selector:
    matchLabels: {app.kubernetes.io/name: db-%[1]d}
  template:
    metadata:
      labels: {app.kubernetes.io/name: db-%[1]d, app.kubernetes.io/part-of: shop}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 999, fsGroup: 999}
      containers:
        - name: postgres
          image: postgres:17
          ports: [{name: postgres, containerPort: 5432}]
          env:
            - {name: PGDATA, value: /var/lib/postgresql/data/pgdata}
            - {name: POSTGRES_DB, value: shop}
            - name: POSTGRES_PASSWORD
              valueFrom: {secretKeyRef: {name: db-%[1]d, key: password}}
          readinessProbe:
            exec: {command: [pg_isready, -U, postgres]}
            periodSeconds: 5
          resources:
            requests: {cpu: 100m, memory: 256Mi}
            limits: {memory: 512Mi}
          volumeMounts:
            - {name: data, mountPath: /var/lib/postgresql/data}
            - {name: tmp, mountPath: /tmp}
      volumes:
        - {name: tmp, emptyDir: {}}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 10Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: uploads-%[1]d
  namespace: team-%[2]d
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 5Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-%[1]d
  namespace: team-%[2]d
  labels: {app.kubernetes.io/name: web-%[1]d}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector:
    matchLabels: {app.kubernetes.io/name: web-%[1]d}
  template:
    metadata:
      labels: {app.kubernetes.io/name: web-%[1]d}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 8080}]
          resources:
            requests: {cpu: 50m, memory: 64Mi}
          volumeMounts:
            - {name: uploads, mountPath: /srv/uploads}
      volumes:
        - name: uploads
          persistentVolumeClaim: {claimName: uploads-%[1]d}
---
`

// ObjectsPerUnit is how many objects each unit holds.
const ObjectsPerUnit = 4

// Write writes objects/ObjectsPerUnit units, spread over 50 namespaces.
func Write(w io.Writer, objects int) error {
	bw := bufio.NewWriter(w)
	for i := 0; i < objects/ObjectsPerUnit; i++ {
		if _, err := fmt.Fprintf(bw, unit, i, i%50); err != nil {
			return err
		}
	}
	return bw.Flush()
}
